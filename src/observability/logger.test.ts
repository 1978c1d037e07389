/** Tests of the node logger: one JSON line per event, node ID on each, bigints never throw. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger, toCoreLogger, toLoggable } from './logger';

/** A logger writing into an array of parsed lines. */
function capture(level: 'debug' | 'info' = 'info') {
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      raw.push(chunk.toString('utf8'));
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      callback();
    },
  });
  return { logger: createLogger({ nodeId: 18446744073709551615n, level, destination }), lines, raw };
}

describe('createLogger', () => {
  it('writes one JSON line per event with the node ID, level name and ISO time', () => {
    const { logger, lines, raw } = capture();
    logger.info({ term: 2 }, 'became leader');
    assert.equal(raw.length, 1);
    assert.match(raw[0] ?? '', /^\{.*\}\n$/);
    const line = lines[0] ?? {};
    assert.equal(line['nodeId'], '18446744073709551615');
    assert.equal(line['level'], 'info');
    assert.equal(line['msg'], 'became leader');
    assert.equal(line['term'], 2);
    assert.match(String(line['time']), /^\d{4}-\d\d-\d\dT/);
  });

  it('writes bigints as exact decimal strings, nested and in child bindings', () => {
    const { logger, lines } = capture();
    logger.child({ peer: 9007199254740993n }).warn(
      { member: 18446744073709551615n, nested: { ids: [1n, 2n] }, err: new Error('boom') },
      'send failed',
    );
    const line = lines[0] ?? {};
    assert.equal(line['peer'], '9007199254740993');
    assert.equal(line['member'], '18446744073709551615');
    assert.deepEqual(line['nested'], { ids: ['1', '2'] });
    assert.match(JSON.stringify(line['err']), /boom/);
  });

  it('converts bigints in grandchild bindings too', () => {
    const { logger, lines } = capture();
    logger.child({ a: 1n }).child({ b: 18446744073709551615n }).info('x');
    assert.equal(lines[0]?.['a'], '1');
    assert.equal(lines[0]?.['b'], '18446744073709551615');
  });

  it('respects the level', () => {
    const { logger, lines } = capture('info');
    logger.debug('hidden');
    assert.equal(lines.length, 0);
  });
});

describe('toLoggable', () => {
  it('leaves non-plain objects alone and converts bigints', () => {
    const date = new Date(0);
    assert.equal(toLoggable(5n), '5');
    assert.equal(toLoggable(date), date);
    assert.deepEqual(toLoggable({ a: [3n, { b: 4n }] }), { a: ['3', { b: '4' }] });
  });
});

describe('toCoreLogger', () => {
  it('maps (message, fields) to pino lines', () => {
    const { logger, lines } = capture('debug');
    const core = toCoreLogger(logger);
    core.debug('tick');
    core.info('campaign', { term: 3n });
    core.warn('lost quorum', { voters: [1n, 2n] });
    assert.deepEqual(
      lines.map((line) => [line['level'], line['msg'], line['term'], line['voters']]),
      [
        ['debug', 'tick', undefined, undefined],
        ['info', 'campaign', '3', undefined],
        ['warn', 'lost quorum', undefined, ['1', '2']],
      ],
    );
  });
});
