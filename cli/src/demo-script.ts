import type { MockScript } from '@errand/llm';

/** The demo's goal: every request of its run contains it, so the script answers only this agent. */
export const DEMO_GOAL = 'Compare the release notes in notes/ and update summary.md with what changed between v1 and v2.';

/** Files the demo puts in the workspace before the agent starts. */
export const DEMO_FILES: Readonly<Record<string, string>> = {
  'notes/v1.md': '# Release 1\n\n- Agents survive host restarts.\n- Tools run once per call.\n',
  'notes/v2.md': '# Release 2\n\n- Agents survive host restarts.\n- Tools run once per call.\n- Approvals from Slack and Telegram.\n- Live progress with errand watch.\n',
  'summary.md': '# Summary\n\n(nothing yet)\n',
};

const plan = (read: string, compare: string, write: string) => ({
  name: 'update_plan',
  arguments: {
    tasks: [
      {
        id: 'read',
        title: 'Read both release notes',
        status: read,
        children: [
          { id: 'read-v1', title: 'notes/v1.md', status: read === 'pending' ? 'in_progress' : read },
          { id: 'read-v2', title: 'notes/v2.md', status: read === 'pending' ? 'in_progress' : read },
        ],
      },
      { id: 'compare', title: 'Compare them', status: compare },
      { id: 'write', title: 'Update summary.md (needs approval: it overwrites)', status: write },
    ],
  },
});

/**
 * The scripted model's side of the demo: it plans (a task tree), reads two files at once — one
 * under a wrong name, which fails — looks in the folder, reads the right file, overwrites
 * summary.md (an `ask` call: a person approves it) and answers. Each step checks that the agent
 * showed the model what it should have seen.
 */
export const DEMO_SCRIPT: MockScript = {
  steps: [
    {
      match: DEMO_GOAL,
      expect: { notContains: ['notes/v1.md:'] },
      reply: {
        content: 'First a plan; then I read both versions at once.',
        toolCalls: [plan('pending', 'pending', 'pending'), { name: 'fs_read', arguments: { path: 'notes/v1.md' } }, { name: 'fs_read', arguments: { path: 'notes/v2.txt' } }],
      },
    },
    {
      match: DEMO_GOAL,
      expect: { contains: ['Agents survive host restarts', 'notes/v2.txt'] },
      reply: { content: 'notes/v2.txt does not exist. Let me look at what the folder holds.', toolCalls: [{ name: 'fs_list', arguments: { path: 'notes' } }] },
    },
    {
      match: DEMO_GOAL,
      expect: { contains: ['v2.md'] },
      reply: { content: 'It is notes/v2.md.', toolCalls: [{ name: 'fs_read', arguments: { path: 'notes/v2.md' } }] },
    },
    {
      match: DEMO_GOAL,
      expect: { contains: ['Approvals from Slack and Telegram'] },
      reply: {
        content: 'Release 2 adds two things. Writing the summary.',
        toolCalls: [
          plan('done', 'done', 'in_progress'),
          {
            name: 'fs_write',
            arguments: {
              path: 'summary.md',
              overwrite: true,
              content: '# Summary\n\nRelease 2 keeps everything in release 1 and adds:\n\n- Approvals from Slack and Telegram.\n- Live progress with errand watch.\n',
            },
          },
        ],
      },
    },
    {
      match: DEMO_GOAL,
      reply: {
        content: 'summary.md now says what changed: release 2 adds approvals from Slack and Telegram, and live progress with errand watch.',
        toolCalls: [plan('done', 'done', 'done')],
      },
    },
    {
      match: DEMO_GOAL,
      reply: { content: 'Done: summary.md lists the two additions of release 2 (approvals from Slack and Telegram; live progress with errand watch).' },
    },
  ],
};
