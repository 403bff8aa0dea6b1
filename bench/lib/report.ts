/**
 * Collected figures and the Markdown tables printed at the end of a run (and pasted into
 * bench/RESULTS.md): one table per case with every subject's median, and one table of targets
 * with sockcat / anchor ratios.
 */

/** One measurement of one subject in one round. */
export interface Sample {
  value: number;
  /** Server CPU (the subject's whole process tree), in % of one core over the measurement. */
  serverCpu?: number;
  /** Load generator CPU, in % of one core. */
  genCpu?: number;
  /** Something worth saying next to the figure ("stalled", "3 errors"). */
  note?: string;
}

export interface Metric {
  id: string;
  title: string;
  unit: string;
  /** Decimals shown. */
  digits: number;
  samples: Map<string, Sample[]>;
  /** Why a subject has no figure (could not start, mode missing…). */
  missing: Map<string, string>;
}

export interface Target {
  metric: string;
  subject: string;
  anchor: string;
  /** The anchor's figure comes from this metric instead (sockcat's RSS against socat's PSS). */
  anchorMetric?: string;
  /** sockcat / anchor must be ≥ factor ('>=') or ≤ factor ('<='). */
  op: '>=' | '<=';
  factor: number;
  /** One of the goals of issue #12: also listed in the run's closing table of every goal. */
  headline?: boolean;
}

export interface CaseResult {
  name: string;
  subjects: string[];
  metrics: Metric[];
  targets: Target[];
  /** Lines printed under the case's table (commands, caveats). */
  notes: string[];
}

export function newMetric(id: string, title: string, unit: string, digits = 0): Metric {
  return { id, title, unit, digits, samples: new Map(), missing: new Map() };
}

export function addSample(m: Metric, subject: string, s: Sample): void {
  const list = m.samples.get(subject) ?? [];
  list.push(s);
  m.samples.set(subject, list);
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Median of a subject's samples for a metric, or undefined when it has none. */
export function medianOf(m: Metric, subject: string): number | undefined {
  const list = m.samples.get(subject);
  if (!list || list.length === 0) return undefined;
  const v = median(list.map((s) => s.value));
  return Number.isFinite(v) ? v : undefined;
}

const fmt = (v: number, digits: number) => v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function cell(m: Metric, subject: string): string {
  const list = m.samples.get(subject);
  if (!list || list.length === 0) return 'n/a';
  const v = medianOf(m, subject);
  let out = v === undefined ? 'n/a' : fmt(v, m.digits);
  const cpu = list.map((s) => s.serverCpu).filter((x): x is number => x !== undefined);
  if (cpu.length > 0) out += ` (cpu ${Math.round(median(cpu))}%)`;
  const notes = [...new Set(list.map((s) => s.note).filter(Boolean))];
  if (notes.length > 0) out += ` [${notes[0]}${notes.length > 1 ? `; other rounds alike (${notes.length - 1})` : ''}]`;
  if (list.length > 1) out += ` n=${list.length}`;
  return out;
}

/** The case as Markdown: a table of medians, generator CPU, missing subjects and targets. */
export function formatCase(c: CaseResult): string {
  const lines: string[] = [`### ${c.name}`, ''];
  lines.push(`| metric | ${c.subjects.join(' | ')} |`);
  lines.push(`|---|${c.subjects.map(() => '---:').join('|')}|`);
  for (const m of c.metrics) lines.push(`| ${m.title} (${m.unit}) | ${c.subjects.map((s) => cell(m, s)).join(' | ')} |`);
  lines.push('');
  lines.push('Figures are medians over the rounds (n); "cpu" is the server process tree\'s CPU in % of one core during the measurement.');
  const gen: string[] = [];
  for (const m of c.metrics) {
    const all = [...m.samples.values()].flat().map((s) => s.genCpu).filter((x): x is number => x !== undefined);
    if (all.length > 0) gen.push(`${m.title}: ${Math.round(median(all))}%`);
  }
  if (gen.length > 0) lines.push(`Load generator CPU (median, % of one core): ${gen.join('; ')}.`);
  const missing = new Map<string, string>();
  for (const m of c.metrics) for (const [s, why] of m.missing) missing.set(s, why);
  for (const [s, why] of missing) lines.push(`- ${s}: ${why}`);
  for (const n of c.notes) lines.push(`- ${n}`);
  if (c.targets.length > 0) {
    lines.push('', '| metric | sockcat | anchor | ratio | target | met? |', '|---|---:|---:|---:|---|---|');
    for (const t of c.targets) lines.push(formatTarget(c, t));
  }
  lines.push('');
  return lines.join('\n');
}

export function formatTarget(c: CaseResult, t: Target): string {
  const m = c.metrics.find((x) => x.id === t.metric)!;
  const a = medianOf(m, t.subject);
  const b = medianOf(t.anchorMetric ? c.metrics.find((x) => x.id === t.anchorMetric)! : m, t.anchor);
  const target = `${t.op} ${t.factor}× ${t.anchor}${t.anchorMetric ? ` (${t.anchorMetric === 'mem' ? 'PSS' : t.anchorMetric})` : ''}`;
  if (a === undefined || b === undefined || b === 0) {
    return `| ${m.title} | ${a === undefined ? 'n/a' : fmt(a, m.digits)} | ${b === undefined ? 'n/a' : fmt(b, m.digits)} | – | ${target} | not measured |`;
  }
  const ratio = a / b;
  const met = t.op === '>=' ? ratio >= t.factor : ratio <= t.factor;
  return `| ${m.title} (${m.unit}) [${t.subject}] | ${fmt(a, m.digits)} | ${fmt(b, m.digits)} | ${ratio.toFixed(2)}× | ${target} | ${met ? 'yes' : '**no**'} |`;
}

/** The closing table: every headline goal of every case run, in one place. */
export function formatGoals(cases: CaseResult[]): string {
  const lines = ['### Every goal of the run (issue #12)', '', '| metric | sockcat | anchor | ratio | target | met? |', '|---|---:|---:|---:|---|---|'];
  for (const c of cases) for (const t of c.targets) if (t.headline) lines.push(formatTarget(c, t));
  lines.push('');
  return lines.join('\n');
}
