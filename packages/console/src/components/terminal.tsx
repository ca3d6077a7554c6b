import type { PtyHandle, Sandbox } from "@wrenn/sdk";
import { FitAddon } from "@xterm/addon-fit";
import { Terminal as XTerm } from "@xterm/xterm";
import { useEffect, useRef, useState } from "react";
import { messageOf } from "../api/index.js";

/**
 * A login shell in the sandbox over the exec stream WebSocket (the SDK's `pty`), drawn by
 * xterm.js; it follows the element's size. Leaving the page ends the shell.
 */
export function Terminal({ sandbox }: { sandbox: Sandbox }) {
  const host = useRef<HTMLDivElement>(null);
  const [status, setStatus] = useState("connecting…");

  useEffect(() => {
    const element = host.current;
    if (!element) return;
    const term = new XTerm({
      cursorBlink: true,
      fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace",
      fontSize: 14,
      screenReaderMode: false,
      theme: { background: "#111418", foreground: "#e6e6e6" },
    });
    // The shell takes every key, Tab included; F6 (the browser's "next pane" key) hands the
    // keyboard back to the page, at the first control after the terminal.
    term.attachCustomKeyEventHandler((e) => {
      if (e.key !== "F6") return true;
      if (e.type === "keydown") {
        const next = element.closest("section")?.nextElementSibling;
        next?.querySelector<HTMLElement>("input, button, a, select, textarea")?.focus();
      }
      return false;
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    fit.fit();
    let pty: PtyHandle | undefined;
    let closed = false;
    const abort = new AbortController();
    const decoderless = term.onData((data) => void pty?.sendInput(data));
    const observer = new ResizeObserver(() => {
      fit.fit();
      void pty?.resize({ cols: term.cols, rows: term.rows }).catch(() => {});
    });
    observer.observe(element);

    sandbox.pty
      .create({
        cols: term.cols,
        rows: term.rows,
        onData: (bytes) => term.write(bytes),
        signal: abort.signal,
      })
      .then(
        (handle) => {
          if (closed) {
            void handle.kill();
            return;
          }
          pty = handle;
          setStatus("connected");
          // The keyboard goes to the shell only if the user is not already elsewhere on the
          // page: the shell connects seconds after the page shows on a busy host, and taking
          // the focus then sent their next keys (Enter on a form's button) to the shell.
          const active = document.activeElement;
          if (!active || active === document.body || element.contains(active)) term.focus();
          handle.wait().then(
            (r) => setStatus(`shell exited (${r.exitCode})`),
            (err: unknown) => setStatus(`disconnected: ${messageOf(err)}`),
          );
        },
        (err: unknown) => {
          if (!closed) setStatus(`could not start a shell: ${messageOf(err)}`);
        },
      );

    return () => {
      closed = true;
      abort.abort();
      observer.disconnect();
      decoderless.dispose();
      void pty?.kill().catch(() => {});
      term.dispose();
    };
  }, [sandbox]);

  return (
    <div className="terminal-wrap">
      <p className="terminal-status" role="status">
        Terminal: {status}
        <span className="hint"> · F6 leaves the terminal</span>
      </p>
      <div
        ref={host}
        className="terminal"
        data-testid="terminal"
        role="application"
        aria-label="Terminal in the sandbox (keyboard input goes to the shell)"
      />
    </div>
  );
}
