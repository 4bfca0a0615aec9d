import { useState } from 'react';
import { fetchNodes } from '../api';
import { usePoll } from '../hooks/use-live';
import { alertLocation } from '../lib/alerts';
import { nodeHref } from '../lib/node';
import { onLinkClick } from '../router';

/** A node id as a link to its node page (`/nodes/<id>`), optionally keeping a time range. */
export function NodeLink({
  nodeId,
  range,
  children,
}: {
  nodeId: string;
  range?: { start: number; end: number };
  children?: React.ReactNode;
}) {
  const href = nodeHref(
    nodeId,
    range ? { from: String(Math.round(range.start)), to: String(Math.round(range.end)) } : undefined,
  );
  return (
    <a href={href} onClick={onLinkClick} data-node-link={nodeId}>
      {children ?? nodeId}
    </a>
  );
}

/** Where an alert is ("node n1 · rank 7 · GPU 3", or "whole job"), its node a link to the node page. */
export function AlertPlace({ labels }: { labels: Readonly<Record<string, string>> }) {
  const node = labels.node_id;
  if (!node) return <>{alertLocation(labels) || 'whole job'}</>;
  const rest = alertLocation({ ...labels, node_id: '' });
  return (
    <>
      node <NodeLink nodeId={node} />
      {rest && ` · ${rest}`}
    </>
  );
}

/** The nodes a job ran on in a window, each a link to its node page with the same window. */
export function JobNodeLinks({ jobId, start, end }: { jobId: string; start: number; end: number }) {
  const [nodes, setNodes] = useState<string[] | null>(null);
  // The window moves while live: ask again when it starts elsewhere (a zoom) or every minute.
  usePoll(
    async (signal) => {
      try {
        setNodes((await fetchNodes({ jobId, start, end }, signal)).nodes);
      } catch {
        // Links are a convenience here: without them the page still shows everything else.
      }
    },
    60_000,
    [jobId, Math.round(start / 60_000)],
  );
  if (!nodes || nodes.length === 0) return null;
  return (
    <p className="small" data-testid="job-nodes">
      Nodes:{' '}
      {nodes.map((n, i) => (
        <span key={n}>
          {i > 0 && ', '}
          <NodeLink nodeId={n} range={{ start, end }} />
        </span>
      ))}
    </p>
  );
}
