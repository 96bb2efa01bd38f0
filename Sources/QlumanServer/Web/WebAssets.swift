/// The boot page's three files, written here (no build chain, nothing fetched from elsewhere):
/// the page, its style and its script. The script fills the page from `/api/status`, then keeps
/// it current from `/api/events` (server-sent events) without a reload.
enum WebAssets {
    static let login = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>qlumand: log in</title>
        <link rel="stylesheet" href="/app.css"></head>
        <body class="login"><form method="post" action="/login">
        <h1>Cluster boot</h1>
        <p>The web token is in <code>/etc/qlustar/qlumand-web.token</code> on the head node (root only).</p>
        <!--error-->
        <input type="password" name="token" id="token" autocomplete="current-password" autofocus>
        <button type="submit" id="login">Log in</button>
        </form></body></html>
        """

    static let page = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><title>Cluster boot: qlumand</title>
        <link rel="stylesheet" href="/app.css"></head>
        <body data-updates="0">
        <header><h1>Cluster boot</h1><span id="summary">connecting…</span>
        <span id="live" title="server-sent events">●</span>
        <form method="post" action="/logout"><button type="submit">Log out</button></form></header>
        <section><h2>Nodes</h2><div id="legend"></div><div id="grid"></div></section>
        <section id="detail" hidden><h2 id="detail-name"></h2><div id="detail-body"></div></section>
        <section><h2>Multicast sessions</h2><table id="sessions"><thead><tr><th>session</th><th>image</th>
        <th>state</th><th>members</th><th>rate</th><th>MB/s</th><th>loss</th><th>repair</th><th>turns</th></tr></thead>
        <tbody></tbody></table></section>
        <section><h2>The wave</h2><p class="note">one row per node, one bar per stage, seconds since the wave began</p>
        <svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg></section>
        <script src="/app.js"></script>
        </body></html>
        """

    static let css = """
        body { font: 13px system-ui, sans-serif; margin: 0; color: #222; background: #fafafa; }
        header { display: flex; gap: 1em; align-items: center; padding: .5em 1em; background: #263238; color: #fff; }
        header h1 { font-size: 16px; margin: 0; }
        header form { margin-left: auto; }
        #live { color: #999; } #live.on { color: #4caf50; }
        section { padding: .3em 1em; }
        h2 { font-size: 14px; margin: .6em 0 .3em; }
        #grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(52px, 1fr)); gap: 2px; }
        .tile { font-size: 10px; padding: 3px 2px; border-radius: 2px; cursor: pointer; overflow: hidden;
          white-space: nowrap; text-overflow: ellipsis; color: #111; border: 1px solid transparent; }
        .tile.stuck { border-color: #d50000; font-weight: bold; }
        .s-dhcp { background: #b3e5fc; fill: #b3e5fc; } .s-tftp { background: #81d4fa; fill: #81d4fa; }
        .s-initrd { background: #4fc3f7; fill: #4fc3f7; } .s-image { background: #ffe082; fill: #ffca28; }
        .s-verified { background: #dcedc8; fill: #aed581; } .s-configure { background: #c5e1a5; fill: #9ccc65; }
        .s-initd { background: #aed581; fill: #7cb342; } .s-system { background: #9ccc65; fill: #689f38; }
        .s-up, .st-up { background: #43a047; fill: #43a047; color: #fff; }
        .st-failed { background: #e53935; color: #fff; } .st-silent { background: #9e9e9e; color: #fff; }
        .st-never { background: #eceff1; color: #777; }
        #legend span { display: inline-block; padding: 1px 6px; margin: 0 2px 4px 0; border-radius: 2px; font-size: 11px; }
        table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; border-bottom: 1px solid #ddd; }
        .failed { color: #c62828; } .note { color: #777; margin: 0; font-size: 11px; }
        svg { background: #fff; border: 1px solid #ddd; }
        svg text { font-size: 9px; fill: #555; }
        body.login form { width: 22em; margin: 10em auto; padding: 1.5em; background: #fff; border: 1px solid #ddd; }
        body.login input { width: 100%; margin: .5em 0; } .error { color: #c62828; }
        """

    static let js = #"""
        'use strict';
        const STAGES = ['dhcp', 'tftp', 'initrd', 'image', 'verified', 'configure', 'initd', 'system', 'up'];
        const nodes = new Map();
        let summary = { counts: {}, sessions: [] };
        let updates = 0;
        let timelineDue = true;

        const $ = (id) => document.getElementById(id);
        const el = (tag, attrs, text) => {
          const e = document.createElement(tag);
          for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
          if (text !== undefined) e.textContent = text;
          return e;
        };
        const secs = (s) => s === undefined || s === null ? '' : s < 120 ? Math.round(s) + ' s' : Math.round(s / 60) + ' min';

        function classOf(n) {
          if (n.state === 'booting' && n.stage) return 's-' + n.stage;
          if (n.state === 'up') return 's-up';
          return 'st-' + n.state;
        }

        function label(n) {
          let t = n.node + ': ' + (n.state === 'booting' ? n.stage : n.state);
          if (n.seconds !== undefined) t += ' for ' + secs(n.seconds);
          if (n.image) t += ', image ' + n.image + (n.imageVersion ? '@' + n.imageVersion.slice(0, 8) : '');
          if (n.progress !== undefined && n.progress !== null) t += ', ' + Math.round(n.progress * 100) + ' %';
          if (n.loss) t += ', loss ' + (n.loss * 100).toFixed(1) + ' %';
          if (n.retries) t += ', ' + n.retries + ' retries';
          if (n.lastError) t += ' — ' + n.lastError;
          return t;
        }

        function applyNode(n) {
          nodes.set(n.node, n);
          let tile = $('n-' + n.node);
          if (!tile) {
            tile = el('div', { id: 'n-' + n.node }, n.node);
            tile.addEventListener('click', () => showNode(n.node));
            const grid = $('grid');
            const after = [...grid.children].find((c) => c.id.slice(2).localeCompare(n.node, undefined, { numeric: true }) > 0);
            grid.insertBefore(tile, after || null);
          }
          tile.className = 'tile ' + classOf(n) + (n.stuck ? ' stuck' : '');
          tile.title = label(n);
          tile.dataset.state = n.state;
          tile.dataset.stage = n.stage || '';
          tile.dataset.updatedAt = String(Date.now());
          timelineDue = true;
        }

        function renderSummary() {
          const order = STAGES.filter((s) => s !== 'up').concat(['up', 'failed', 'silent', 'never', 'stuck']);
          const parts = order.filter((k) => summary.counts[k]).map((k) => k + ' ' + summary.counts[k]);
          let text = nodes.size + ' nodes: ' + (parts.join(', ') || 'none');
          if (summary.waveStartedAt) text += '; wave began ' + secs(summary.at - summary.waveStartedAt) + ' ago';
          $('summary').textContent = text;
          const body = $('sessions').tBodies[0];
          body.replaceChildren(...summary.sessions.map((s) => {
            const tr = el('tr', { id: 'session-' + s.id });
            for (const v of [s.id, s.image, s.state, s.members, s.rate, s.wireMBps.toFixed(1),
              s.lossPercent.toFixed(1) + ' %', s.repairSymbols, s.passes]) tr.appendChild(el('td', {}, String(v)));
            return tr;
          }));
        }

        function renderTimeline() {
          timelineDue = false;
          const svg = $('timeline');
          const list = [...nodes.values()].filter((n) => n.startedAt && summary.waveStartedAt && n.startedAt >= summary.waveStartedAt - 1)
            .sort((a, b) => a.node.localeCompare(b.node, undefined, { numeric: true }));
          const row = Math.max(2, Math.min(14, Math.floor(600 / Math.max(1, list.length))));
          const width = Math.max(600, $('grid').clientWidth - 20);
          const left = row >= 10 ? 60 : 4;
          const end = Math.max(10, (summary.at || Date.now() / 1000) - (summary.waveStartedAt || 0));
          const x = (t) => left + (width - left - 10) * t / end;
          svg.setAttribute('width', width);
          svg.setAttribute('height', list.length * row + 16);
          const parts = [];
          list.forEach((n, i) => {
            const base = n.startedAt - summary.waveStartedAt;
            const reached = STAGES.filter((s) => n.stages[s] !== undefined).map((s) => [s, base + n.stages[s]]);
            reached.forEach(([s, t], k) => {
              const next = k + 1 < reached.length ? reached[k + 1][1] : (n.state === 'booting' ? end : t + end / 200);
              parts.push(`<rect class="s-${s}" x="${x(t).toFixed(1)}" y="${i * row}" width="${Math.max(1, x(next) - x(t)).toFixed(1)}" height="${row - 1}"><title>${n.node} ${s}</title></rect>`);
            });
            if (row >= 10) parts.push(`<text x="2" y="${i * row + row - 3}">${n.node}</text>`);
          });
          for (let t = 0; t <= end; t += Math.max(5, Math.ceil(end / 10 / 5) * 5)) {
            parts.push(`<text x="${x(t).toFixed(1)}" y="${list.length * row + 12}">${Math.round(t)} s</text>`);
          }
          svg.innerHTML = parts.join('');
        }

        async function showNode(name) {
          const r = await fetch('/api/node?name=' + encodeURIComponent(name));
          if (!r.ok) return;
          const boots = await r.json();
          $('detail').hidden = false;
          $('detail-name').textContent = name + (boots.length ? '' : ': no boot recorded');
          const body = $('detail-body');
          body.replaceChildren();
          boots.slice(0, 3).forEach((b, i) => {
            body.appendChild(el('p', {}, (i === 0 ? 'current boot' : 'earlier boot') + ', began ' +
              new Date(b.startedAt * 1000).toLocaleString() + ': ' + b.outcome + ' in ' + b.stage +
              (b.lastError ? ' — ' + b.lastError : '')));
            const table = el('table');
            for (const e of b.events) {
              const tr = el('tr', e.failed ? { class: 'failed' } : {});
              tr.appendChild(el('td', {}, '+' + (e.at - b.startedAt).toFixed(1) + ' s'));
              tr.appendChild(el('td', {}, e.stage));
              tr.appendChild(el('td', {}, e.what + (e.retry ? ' (again)' : '')));
              table.appendChild(tr);
            }
            body.appendChild(table);
          });
        }

        function legend() {
          const box = $('legend');
          for (const s of STAGES) box.appendChild(el('span', { class: 's-' + s }, s));
          for (const s of ['failed', 'silent', 'never']) box.appendChild(el('span', { class: 'st-' + s }, s));
        }

        async function start() {
          legend();
          const r = await fetch('/api/status');
          if (r.status === 401) { location.reload(); return; }
          const status = await r.json();
          status.boot.nodes.forEach(applyNode);
          summary = { at: status.boot.at, waveStartedAt: status.boot.waveStartedAt, counts: status.boot.counts, sessions: status.sessions };
          renderSummary();
          renderTimeline();
          document.body.dataset.loaded = String(Date.now());
          const events = new EventSource('/api/events');
          events.addEventListener('open', () => $('live').classList.add('on'));
          events.addEventListener('error', () => $('live').classList.remove('on'));
          events.addEventListener('nodes', (m) => {
            JSON.parse(m.data).forEach(applyNode);
            document.body.dataset.updates = String(++updates);
          });
          events.addEventListener('summary', (m) => {
            summary = JSON.parse(m.data);
            renderSummary();
            if (timelineDue) renderTimeline();
          });
        }

        start();
        """#
}
