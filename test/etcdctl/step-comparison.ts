/**
 * Step-by-step comparison of two recorded script runs, with a readable report.
 *
 * Each difference is named by its path inside the normalised output, e.g.
 * `stdout.documents[0].kvs[1].mod_revision: A=6 B=7`, followed by both normalised outputs of
 * the step, so a failure explains itself without re-running anything.
 */
import type { NormalisedOutput } from './output-normaliser';

/** One recorded step of a script run. */
export interface RecordedStep {
  /** 1-based position in the script. */
  readonly index: number;
  /** The script's name for the step (unique within the script). */
  readonly name: string;
  readonly output: NormalisedOutput;
}

/** One field that differs between the two sides. */
export interface FieldDifference {
  /** Path inside {@link NormalisedOutput}, e.g. `stdout.lines[2]`. */
  readonly path: string;
  readonly valueA: unknown;
  readonly valueB: unknown;
}

/** The differences of one step (never empty). */
export interface StepDifference {
  readonly index: number;
  readonly name: string;
  readonly fields: readonly FieldDifference[];
  readonly outputA: NormalisedOutput | undefined;
  readonly outputB: NormalisedOutput | undefined;
}

/** Lists every field at which two JSON-like values differ (arrays by index, objects by key). */
export function diffValues(valueA: unknown, valueB: unknown, path = ''): FieldDifference[] {
  if (Object.is(valueA, valueB)) return [];
  if (Array.isArray(valueA) && Array.isArray(valueB)) {
    const differences: FieldDifference[] = [];
    const length = Math.max(valueA.length, valueB.length);
    for (let index = 0; index < length; index++) {
      const childPath = `${path}[${index}]`;
      if (index >= valueA.length) differences.push({ path: childPath, valueA: '<missing>', valueB: valueB[index] });
      else if (index >= valueB.length) differences.push({ path: childPath, valueA: valueA[index], valueB: '<missing>' });
      else differences.push(...diffValues(valueA[index], valueB[index], childPath));
    }
    return differences;
  }
  if (isPlainObject(valueA) && isPlainObject(valueB)) {
    const differences: FieldDifference[] = [];
    const names = [...new Set([...Object.keys(valueA), ...Object.keys(valueB)])].sort();
    for (const name of names) {
      const childPath = path === '' ? name : `${path}.${name}`;
      if (!(name in valueA)) differences.push({ path: childPath, valueA: '<absent>', valueB: valueB[name] });
      else if (!(name in valueB)) differences.push({ path: childPath, valueA: valueA[name], valueB: '<absent>' });
      else differences.push(...diffValues(valueA[name], valueB[name], childPath));
    }
    return differences;
  }
  return [{ path: path === '' ? '(value)' : path, valueA, valueB }];
}

/** Compares two runs of the same script step by step; an empty list means identical. */
export function compareRuns(stepsA: readonly RecordedStep[], stepsB: readonly RecordedStep[]): StepDifference[] {
  const differences: StepDifference[] = [];
  const length = Math.max(stepsA.length, stepsB.length);
  for (let position = 0; position < length; position++) {
    const stepA = stepsA[position];
    const stepB = stepsB[position];
    if (stepA === undefined || stepB === undefined || stepA.name !== stepB.name) {
      differences.push({
        index: position + 1,
        name: stepA?.name ?? stepB?.name ?? '?',
        fields: [{ path: '(step)', valueA: stepA?.name ?? '<missing>', valueB: stepB?.name ?? '<missing>' }],
        outputA: stepA?.output,
        outputB: stepB?.output,
      });
      continue;
    }
    const fields = diffValues(stepA.output, stepB.output);
    if (fields.length > 0) differences.push({ index: stepA.index, name: stepA.name, fields, outputA: stepA.output, outputB: stepB.output });
  }
  return differences;
}

/** A human-readable report of {@link compareRuns}' result, naming the two sides. */
export function formatDifferences(differences: readonly StepDifference[], labelA: string, labelB: string, totalSteps: number): string {
  if (differences.length === 0) return `no differences in ${totalSteps} steps`;
  const lines = [`${differences.length} of ${totalSteps} steps differ (A = ${labelA}, B = ${labelB}):`];
  for (const difference of differences) {
    lines.push('', `step ${difference.index} "${difference.name}": ${difference.outputA?.command ?? difference.outputB?.command ?? ''}`);
    for (const field of difference.fields) lines.push(`  ${field.path}: A=${render(field.valueA)} B=${render(field.valueB)}`);
    lines.push(`  --- A (${labelA}):`, indent(renderOutput(difference.outputA)), `  --- B (${labelB}):`, indent(renderOutput(difference.outputB)));
  }
  return lines.join('\n');
}

/** The whole normalised output of one step, for reports. */
export function renderOutput(output: NormalisedOutput | undefined): string {
  if (output === undefined) return '(step not run)';
  const lines = [`command: ${output.command}`, `exit: ${output.exit}`];
  switch (output.stdout.format) {
    case 'text':
      lines.push('stdout:', ...output.stdout.lines.map((line) => `  ${line}`));
      break;
    case 'json':
      lines.push('stdout (json):', ...output.stdout.documents.map((document) => `  ${JSON.stringify(document)}`));
      break;
    case 'watch-json':
      lines.push('stdout (watch events):', ...output.stdout.events.map((event) => `  ${JSON.stringify(event)}`));
      if (output.stdout.otherResponses.length > 0) lines.push('stdout (responses without events):', ...output.stdout.otherResponses.map((response) => `  ${JSON.stringify(response)}`));
      break;
  }
  if (output.stderr.length > 0) lines.push('stderr:', ...output.stderr.map((line) => `  ${line}`));
  return lines.join('\n');
}

function render(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value) ?? String(value);
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
