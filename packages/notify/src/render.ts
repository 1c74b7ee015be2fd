import { patternRedactor, type Message, type Redactor } from '@errand/protocols';

/** What every channel shows: plain, safe text and, for approvals, the decision buttons. */
export interface Rendered {
  title: string;
  /** Redacted, URL-free text (the dashboard link apart). */
  text: string;
  link: string | undefined;
  approval: { agentId: string; requestId: string; argsHash: string } | undefined;
}

const URL_PATTERN = /\b(?:https?|ftp):\/\/[^\s<>"')\]]+/gi;

/**
 * Makes agent-produced text safe to send: secrets are replaced (the process's known secrets with
 * `redactor`, the usual formats always), and every URL is removed — an injected link must not
 * reach a person's chat, where a click or a preview fetch could leak data.
 */
export function sanitize(text: string, maxChars = 1500, redactor: Redactor = patternRedactor): string {
  let out = redactor.redact(text);
  out = out.replace(URL_PATTERN, '[link removed]');
  return out.length > maxChars ? `${out.slice(0, maxChars)}…` : out;
}

/** The message for a notify command. The title and text come from the agent; both are sanitized. */
export function render(command: Message<'notify.request'>, dashboardUrl: string | undefined, redactor: Redactor = patternRedactor): Rendered {
  const link = dashboardUrl ? `${dashboardUrl.replace(/\/$/, '')}/agents/${encodeURIComponent(command.agentId)}` : undefined;
  return {
    title: sanitize(command.title, 200, redactor),
    text: sanitize(command.text, 1500, redactor),
    link,
    approval: command.approval ? { agentId: command.agentId, requestId: command.approval.requestId, argsHash: command.approval.argsHash } : undefined,
  };
}
