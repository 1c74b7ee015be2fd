// The process's Prometheus registry: the counters every service records, in the text format a
// scrape reads. Pure, no server (startMetricsServer is tested in metrics-server.test.ts).
import { describe, expect, it } from 'vitest';
import { metrics, registry, watchConsumerPending } from '@errand/telemetry';

describe('the Prometheus registry', () => {
  it('exposes every Errand metric with its help text', async () => {
    const text = await registry.metrics();
    for (const name of [
      'errand_steps_total',
      'errand_step_duration_seconds',
      'errand_commands_published_total',
      'errand_commands_total',
      'errand_command_duration_seconds',
      'errand_tool_calls_total',
      'errand_tool_call_duration_seconds',
      'errand_model_tokens_total',
      'errand_model_cost_usd_total',
      'errand_consumer_redeliveries_total',
      'errand_dead_lettered_total',
      'errand_consumer_pending',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# HELP ${name} \\S`, 'm'));
    }
    expect(text).toMatch(/^errand_process_\w+ /m);
  });

  it('counts by label', async () => {
    metrics.toolCalls.inc({ tool: 'fs_read', outcome: 'ok' });
    metrics.toolCalls.inc({ tool: 'fs_read', outcome: 'ok' });
    metrics.toolCalls.inc({ tool: 'fs_read', outcome: 'error' });
    metrics.modelTokens.inc({ model: 'm1', type: 'input' }, 120);
    metrics.toolSeconds.observe({ tool: 'fs_read' }, 0.02);
    const text = await registry.metrics();
    expect(text).toContain('errand_tool_calls_total{tool="fs_read",outcome="ok"} 2');
    expect(text).toContain('errand_tool_calls_total{tool="fs_read",outcome="error"} 1');
    expect(text).toContain('errand_model_tokens_total{model="m1",type="input"} 120');
    expect(text).toContain('errand_tool_call_duration_seconds_bucket{le="0.025",tool="fs_read"} 1');
    expect(text).toContain('errand_tool_call_duration_seconds_count{tool="fs_read"} 1');
  });

  it('reads a consumer pending count at scrape time; a source that fails gives no sample; a stopped one is gone', async () => {
    let pending = 7;
    const stop = watchConsumerPending('host', async () => pending);
    const stopBroken = watchConsumerPending('broken', async () => {
      throw new Error('server away');
    });
    expect(await registry.metrics()).toContain('errand_consumer_pending{consumer="host"} 7');
    pending = 3;
    const text = await registry.metrics();
    expect(text).toContain('errand_consumer_pending{consumer="host"} 3');
    expect(text).not.toContain('consumer="broken"');
    stop();
    stopBroken();
    expect(await registry.metrics()).not.toContain('errand_consumer_pending{consumer="host"}');
  });
});
