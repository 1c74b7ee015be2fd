import { errors } from '@nats-io/transport-node';
import { JetStreamApiError, JetStreamError } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { isNatsUnavailable } from '@errand/nats';

describe('isNatsUnavailable', () => {
  it('is true for NATS or JetStream not answering yet, also as a cause; false for refusals and other failures', () => {
    expect(isNatsUnavailable(new errors.TimeoutError())).toBe(true);
    expect(isNatsUnavailable(new errors.RequestError('failed', { cause: new errors.NoRespondersError('$JS.API.INFO') }))).toBe(true);
    expect(isNatsUnavailable(new JetStreamError('jetstream is not enabled'))).toBe(true);
    expect(isNatsUnavailable(new JetStreamApiError({ code: 503, err_code: 10008, description: 'JetStream system temporarily unavailable' }))).toBe(true);
    expect(isNatsUnavailable(new Error('wrapped', { cause: new errors.TimeoutError() }))).toBe(true);

    expect(isNatsUnavailable(new JetStreamApiError({ code: 400, err_code: 10058, description: 'stream name already in use with a different configuration' }))).toBe(false);
    expect(isNatsUnavailable(new errors.PermissionViolationError('Permissions Violation for Publish to "x"', 'publish', 'x'))).toBe(false);
    expect(isNatsUnavailable(new Error('spawn mcp-server ENOENT'))).toBe(false);
    expect(isNatsUnavailable(new TypeError('x is undefined'))).toBe(false);
  });
});
