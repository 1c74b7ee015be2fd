import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getSession, onSignedOut } from './api.js';
import { onLinkClick, useRoute } from './router.js';
import './style.css';
import { AgentView } from './views/agent.js';
import { AgentsView } from './views/agents.js';
import { ReplayView } from './views/replay.js';
import { SystemView } from './views/system.js';

function App() {
  const route = useRoute();
  const [signedOut, setSignedOut] = useState(false);
  const [user, setUser] = useState<string | undefined>(undefined);
  useEffect(() => onSignedOut(setSignedOut), []);
  useEffect(() => {
    getSession().then(
      (s) => setUser(s.user),
      () => setUser(undefined),
    );
  }, [signedOut]);
  useEffect(() => {
    const title = route.view === 'agent' ? `Agent ${route.id}` : route.view === 'replay' ? `Replay ${route.id}` : route.view === 'system' ? 'System' : 'Agents';
    document.title = `${title} · Errand`;
  }, [route]);

  return (
    <div class="app" onClick={onLinkClick}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href="/">
          Errand
        </a>
        <nav aria-label="Main">
          <a href="/" aria-current={route.view === 'agents' ? 'page' : undefined}>
            Agents
          </a>
          <a href="/system" aria-current={route.view === 'system' ? 'page' : undefined}>
            System
          </a>
        </nav>
        {user ? <span class="user">signed in as {user}</span> : null}
      </header>
      {signedOut ? (
        <div class="signin" role="alert">
          <strong>Not signed in.</strong> Open the login link <code>errand up</code> printed (<code>http://127.0.0.1:&lt;port&gt;/login?token=…</code>) in
          this browser; it sets the session cookie this page uses.
        </div>
      ) : null}
      <main id="main" tabIndex={-1}>
        {route.view === 'agents' ? <AgentsView /> : null}
        {route.view === 'agent' ? <AgentView key={route.id} id={route.id} /> : null}
        {route.view === 'replay' ? <ReplayView key={`${route.id}|${route.diff ?? ''}`} id={route.id} step={route.step} diff={route.diff} /> : null}
        {route.view === 'system' ? <SystemView /> : null}
        {route.view === 'missing' ? (
          <p>
            Nothing lives at <code>{route.path}</code>. <a href="/">See the agents</a>.
          </p>
        ) : null}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
