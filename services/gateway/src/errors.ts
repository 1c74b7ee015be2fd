// The gateway's HTTP errors: a status and a stable code, sent as `{ "code", "message" }`.
import { ErrandError } from '@errand/protocols';

export const GatewayErrorCode = {
  Unauthenticated: 'ERR_UNAUTHENTICATED',
  Csrf: 'ERR_CSRF',
  TooLarge: 'ERR_TOO_LARGE',
  Invalid: 'ERR_INVALID',
  NotFound: 'ERR_NOT_FOUND',
  AgentNotFound: 'ERR_AGENT_NOT_FOUND',
  NothingPending: 'ERR_NOTHING_PENDING',
  ArgsChanged: 'ERR_ARGS_CHANGED',
  AgentEnded: 'ERR_AGENT_ENDED',
  NoHost: 'ERR_NO_HOST',
  Refused: 'ERR_REFUSED',
  AgentModules: 'ERR_AGENT_MODULES',
  Internal: 'ERR_INTERNAL',
} as const;
export type GatewayErrorCode = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode] | (string & {});

/** A refusal the gateway answers with `status` and `{ code, message }`. */
export class HttpError extends ErrandError {
  readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 422 | 500 | 502 | 503;

  constructor(status: HttpError['status'], code: GatewayErrorCode, message: string, options: { agentId?: string; cause?: unknown } = {}) {
    super(code, message, options);
    this.name = 'HttpError';
    this.status = status;
  }
}
