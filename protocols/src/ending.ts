/**
 * The event that ends an agent, and is its last: `event.done`, `event.failed`, or — a cancel has
 * no event of its own — the `event.state` that says `cancelled`. Hosts publish it after every
 * other message of its step is stored, and an ended agent publishes nothing more, so a reader
 * that stops at it has missed nothing (docs/protocol.md, "Following an agent from any language").
 */
export function isEndingEvent(message: { readonly kind: string; readonly status?: unknown }): boolean {
  return message.kind === 'event.done' || message.kind === 'event.failed' || (message.kind === 'event.state' && message.status === 'cancelled');
}
