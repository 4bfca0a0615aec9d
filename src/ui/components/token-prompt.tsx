import { useEffect, useRef, useState } from 'react';
import { getToken, setToken } from '../api';

/**
 * Asks for an API token when the user opens it (the login page's "Use an API token", or the top bar). The token
 * is kept in this browser's localStorage and sent as `Authorization: Bearer …` with every request.
 */
export function TokenPrompt() {
  const dialog = useRef<HTMLDialogElement>(null);
  const [value, setValue] = useState('');

  useEffect(() => {
    const onOpen = () => {
      dialog.current?.showModal();
    };
    window.addEventListener('tw:token-prompt', onOpen);
    return () => {
      window.removeEventListener('tw:token-prompt', onOpen);
    };
  }, []);

  const has = getToken() !== null;
  return (
    <dialog ref={dialog} className="dialog" aria-labelledby="token-title">
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (!value.trim()) return;
          setToken(value.trim());
          location.reload();
        }}
      >
        <h2 id="token-title">API token</h2>
        <p className="muted">
          Paste a token made with <code>trainwatch token create --tenant &lt;team&gt; --scope read</code>. It
          stays in this browser (localStorage) and is sent as <code>Authorization: Bearer …</code>.
        </p>
        <input
          type="password"
          autoComplete="off"
          placeholder="twk_…"
          aria-label="API token"
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
        <div className="dialog-actions">
          {has && (
            <button
              type="button"
              className="btn"
              onClick={() => {
                setToken(null);
                location.reload();
              }}
            >
              Forget the saved token
            </button>
          )}
          <button type="button" className="btn" onClick={() => dialog.current?.close()}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary">
            Save
          </button>
        </div>
      </form>
    </dialog>
  );
}
