// The theme before the first paint: the static shell in index.html is drawn before the app's script runs, so
// it must already wear the user's theme (saved by the app, else the system's). A file, not an inline script:
// the Content-Security-Policy allows scripts from this origin only.
(() => {
  let theme = 'dark';
  try {
    const saved = localStorage.getItem('trainwatch.theme');
    if (saved === 'dark' || saved === 'light') theme = saved;
    else if (window.matchMedia?.('(prefers-color-scheme: light)').matches) theme = 'light';
  } catch {
    // Storage refused (privacy settings): the system's preference is unknown here; dark, as the app's default.
  }
  document.documentElement.setAttribute('data-theme', theme);
})();
