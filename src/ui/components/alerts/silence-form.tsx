import { useEffect, useRef, useState } from 'react';
import { createSilence } from '../../api';
import { rememberSilenceAuthor, silenceAuthor } from '../../hooks/use-alerting';
import { matcherOp, silenceFormValid } from '../../lib/alert-list';
import type { Matcher } from '../../lib/types';

const DURATIONS: [string, number][] = [
  ['1 hour', 3600_000],
  ['2 hours', 2 * 3600_000],
  ['4 hours', 4 * 3600_000],
  ['1 day', 86_400_000],
  ['1 week', 7 * 86_400_000],
];

/** A silence with its matchers pre-filled (from an alert) and editable. Opens as a modal dialog. */
export function SilenceForm({
  initial,
  onClose,
  onCreated,
}: {
  initial: { matchers: Matcher[]; comment: string };
  onClose: () => void;
  onCreated: (id: string) => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [matchers, setMatchers] = useState(initial.matchers);
  const [duration, setDuration] = useState(2 * 3600_000);
  const [createdBy, setCreatedBy] = useState(silenceAuthor);
  const [comment, setComment] = useState(initial.comment);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const valid = silenceFormValid(matchers, comment, createdBy);
  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="silence-title" onClose={onClose}>
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          if (!valid) return;
          const now = Date.now();
          rememberSilenceAuthor(createdBy.trim());
          try {
            const id = await createSilence({
              matchers,
              startsAt: new Date(now).toISOString(),
              endsAt: new Date(now + duration).toISOString(),
              createdBy: createdBy.trim(),
              comment: comment.trim(),
            });
            dialog.current?.close();
            onCreated(id);
          } catch (err) {
            setError((err as Error).message);
          }
        }}
      >
        <h2 id="silence-title">New silence</h2>
        <p className="muted small">
          Alerts whose labels match every matcher are not notified until the silence ends.
        </p>
        {matchers.map((m, i) => (
          // biome-ignore lint/suspicious/noArrayIndexKey: matchers are edited in place and have no identity
          <div key={i} className="matcher-row">
            <input
              aria-label="Label name"
              value={m.name}
              onChange={(e) =>
                setMatchers(matchers.map((x, j) => (j === i ? { ...x, name: e.target.value } : x)))
              }
            />
            <select
              aria-label="Match"
              value={matcherOp(m)}
              onChange={(e) => {
                const v = e.target.value;
                setMatchers(
                  matchers.map((x, j) =>
                    j === i ? { ...x, isRegex: v.includes('~'), isEqual: !v.startsWith('!') } : x,
                  ),
                );
              }}
            >
              {['=', '!=', '=~', '!~'].map((o) => (
                <option key={o}>{o}</option>
              ))}
            </select>
            <input
              aria-label="Label value"
              value={m.value}
              onChange={(e) =>
                setMatchers(matchers.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))
              }
            />
            <button
              type="button"
              className="chip-x"
              aria-label={`Remove matcher ${m.name}`}
              onClick={() => setMatchers(matchers.filter((_, j) => j !== i))}
            >
              ×
            </button>
          </div>
        ))}
        <button
          type="button"
          className="btn btn-small"
          onClick={() => setMatchers([...matchers, { name: '', value: '', isRegex: false, isEqual: true }])}
        >
          Add matcher
        </button>
        <label className="field">
          Duration
          <select value={duration} onChange={(e) => setDuration(Number(e.target.value))}>
            {DURATIONS.map(([l, ms]) => (
              <option key={ms} value={ms}>
                {l}
              </option>
            ))}
          </select>
        </label>
        <label className="field">
          Created by
          <input value={createdBy} onChange={(e) => setCreatedBy(e.target.value)} />
        </label>
        <label className="field">
          Comment
          <input value={comment} onChange={(e) => setComment(e.target.value)} required />
        </label>
        {error && <p className="bad">{error}</p>}
        <div className="dialog-actions">
          <button type="button" className="btn" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={!valid} data-testid="silence-submit">
            Create silence
          </button>
        </div>
      </form>
    </dialog>
  );
}
