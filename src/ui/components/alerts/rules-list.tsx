import { fetchRules } from '../../api';
import { fmtAge, fmtNumber } from '../../format';
import { usePolled } from '../../hooks/use-alerting';
import { DataTable } from '../data-table';
import { Empty } from '../widgets';
import { notLoaded } from './missing';

/** The alerting rules by group: state, health, query and their last evaluation. */
export function RulesList() {
  const { data: groups, error } = usePolled(fetchRules, 10_000, []);
  const waiting = notLoaded('rules', groups, error);
  if (waiting !== null || !groups) return waiting;
  if (groups.length === 0)
    return (
      <Empty title="No alerting rules">
        <p>
          Add Prometheus alerting-rule YAML files to the configuration (<code>alerting.rule_files</code>);
          detectors run without rules.
        </p>
      </Empty>
    );
  const now = Date.now();
  return (
    <DataTable
      testId="rules-table"
      columns={[
        'Group',
        'Rule',
        'State',
        'Health',
        'Query',
        'For',
        'Last evaluation',
        { label: 'Took', num: true },
      ]}
    >
      {groups.flatMap((g) =>
        g.rules.map((r) => (
          <tr key={`${g.name}/${r.name}`}>
            <td>{g.name}</td>
            <td>
              <strong>{r.name}</strong>
              <div className="sub">{r.type}</div>
            </td>
            <td>{r.state ? <span className={`badge state-${r.state}`}>{r.state}</span> : '—'}</td>
            <td>
              <span className={r.health === 'ok' ? 'health-ok' : r.health === 'err' ? 'bad' : 'muted'}>
                {r.health ?? '—'}
              </span>
              {r.lastError && <div className="sub bad">{r.lastError}</div>}
            </td>
            <td>
              <code className="query">{r.query}</code>
            </td>
            <td>{r.duration ? `${r.duration}s` : '—'}</td>
            <td>
              {r.lastEvaluation && Date.parse(r.lastEvaluation) > 0
                ? `${fmtAge(Date.parse(r.lastEvaluation), now)} ago`
                : 'never'}
            </td>
            <td className="num">
              {r.evaluationTime !== undefined ? `${fmtNumber(r.evaluationTime * 1000)} ms` : '—'}
            </td>
          </tr>
        )),
      )}
    </DataTable>
  );
}
