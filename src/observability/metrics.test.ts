/** Tests of the metrics registry: separate registries per node, every metric exposed. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createMetrics } from './metrics';

describe('createMetrics', () => {
  it('two nodes in one process get independent registries', async () => {
    const first = createMetrics({ defaultLabels: { member: '1' } });
    const second = createMetrics({ defaultLabels: { member: '2' } });
    first.proposals.inc({ outcome: 'applied' });
    first.fsyncSeconds.observe(0.004);
    first.peerSendFailures.inc({ peer: '3' });
    const firstText = await first.registry.metrics();
    const secondText = await second.registry.metrics();
    assert.match(firstText, /raftkv_proposals_total\{outcome="applied",member="1"\} 1/);
    assert.match(firstText, /raftkv_wal_fsync_duration_seconds_bucket\{le="0.004",member="1"\} 1/);
    assert.match(firstText, /raftkv_peer_send_failures_total\{peer="3",member="1"\} 1/);
    assert.doesNotMatch(secondText, /raftkv_proposals_total\{outcome="applied"/);
  });

  it('exposes every raftkv metric and the default process metrics', async () => {
    const text = await createMetrics().registry.metrics();
    for (const name of [
      'raftkv_proposals_total',
      'raftkv_proposals_pending',
      'raftkv_committed_entries_total',
      'raftkv_applied_index',
      'raftkv_commit_index',
      'raftkv_apply_lag_entries',
      'raftkv_term',
      'raftkv_is_leader',
      'raftkv_wal_fsync_duration_seconds',
      'raftkv_wal_written_bytes_total',
      'raftkv_elections_total',
      'raftkv_leader_changes_total',
      'raftkv_peer_send_failures_total',
      'raftkv_snapshots_total',
      'raftkv_read_index_duration_seconds',
      'raftkv_http_request_duration_seconds',
      'process_cpu_seconds_total',
      'nodejs_heap_size_used_bytes',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
  });

  it('can leave out process metrics', async () => {
    const text = await createMetrics({ processMetrics: false }).registry.metrics();
    assert.doesNotMatch(text, /process_cpu_seconds_total/);
  });
});
