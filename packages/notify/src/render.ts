import { patternRedactor, type Message, type Redactor } from '@errand/protocols';

/** What every channel shows: plain, safe text and, for approvals, the decision buttons. */
export interface Rendered {
  title: string;
  /** Redacted, URL-free text (the dashboard link apart). */
  text: string;
  link: string | undefined;
  approval: { agentId: string; requestId: string; argsHash: string } | undefined;
}

/** A URL, without the punctuation that ends the sentence around it. */
const URL = String.raw`\b(?:https?|ftp):\/\/[^\s<>"')\]|]*[^\s<>"')\]|.,;:!?]`;
const URL_PATTERN = new RegExp(URL, 'gi');
const LINK_REMOVED = '[link removed]';
/** `[label](url "title")`: the label stays, the link goes. */
const MARKDOWN_LINK = new RegExp(String.raw`\[([^\]\n]*)\]\(\s*${URL}(?:\s+"[^"\n]*")?\s*\)`, 'gi');
/** `<url|label>` (Slack) and `<url>`. */
const ANGLE_LINK = new RegExp(String.raw`<\s*${URL}(?:\|([^>\n]*))?>`, 'gi');
/** A URL alone in brackets or parentheses: the brackets go with it (`[https://x]` read `[[link removed]]`). */
const ENCLOSED_URL = new RegExp(String.raw`\[\s*${URL}\s*\]|\(\s*${URL}\s*\)`, 'gi');

/** Every link in `text` replaced by one `[link removed]`, whatever markup wraps it; labels kept. */
function removeLinks(text: string): string {
  const labelled = (label: string | undefined) => {
    const kept = (label ?? '').replace(URL_PATTERN, '').trim();
    return kept ? `${kept} ${LINK_REMOVED}` : LINK_REMOVED;
  };
  return text
    .replace(MARKDOWN_LINK, (_m, label: string) => labelled(label))
    .replace(ANGLE_LINK, (_m, label: string | undefined) => labelled(label))
    .replace(ENCLOSED_URL, LINK_REMOVED)
    .replace(URL_PATTERN, LINK_REMOVED);
}

/**
 * Makes agent-produced text safe to send: secrets are replaced (the process's known secrets with
 * `redactor`, the usual formats always), and every URL is removed — an injected link must not
 * reach a person's chat, where a click or a preview fetch could leak data.
 */
export function sanitize(text: string, maxChars = 1500, redactor: Redactor = patternRedactor): string {
  let out = redactor.redact(text);
  out = removeLinks(out);
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
