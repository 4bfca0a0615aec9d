import { fetchRules } from '../../api';
import { fmtAge, fmtNumber } from '../../format';
import { usePolled } from '../../hooks/use-alerting';
import { Empty, ErrorBox } from '../widgets';
import { MISSING } from './missing';

/** The alerting rules by group: state, health, query and their last evaluation. */
export function RulesList() {
  const { data: groups, error } = usePolled(fetchRules, 10_000, []);
  if (error)
    return error.missingRoute ? (
      <Empty title="No rules yet">
        <p>{MISSING}</p>
      </Empty>
    ) : (
      <ErrorBox error={error} what="rules" />
    );
  if (!groups) return <div className="empty">Loading rules…</div>;
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
    <div className="table-scroll">
      <table className="jobs" data-testid="rules-table">
        <thead>
          <tr>
            <th>Group</th>
            <th>Rule</th>
            <th>State</th>
            <th>Health</th>
            <th>Query</th>
            <th>For</th>
            <th>Last evaluation</th>
            <th className="num">Took</th>
          </tr>
        </thead>
        <tbody>
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
        </tbody>
      </table>
    </div>
  );
}
