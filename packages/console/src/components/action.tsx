import { type ReactNode, useState } from "react";
import { messageOf } from "../api/index.js";

/** A button that runs an async action, disables itself meanwhile and reports a failure. */
export function ActionButton(props: {
  onAction: () => Promise<unknown>;
  onError: (message: string) => void;
  children: ReactNode;
  label?: string;
  danger?: boolean;
  disabled?: boolean;
}) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      type="button"
      className={props.danger ? "danger" : undefined}
      aria-label={props.label}
      aria-busy={busy}
      disabled={busy || props.disabled}
      onClick={async () => {
        setBusy(true);
        try {
          await props.onAction();
        } catch (err) {
          props.onError(messageOf(err));
        } finally {
          setBusy(false);
        }
      }}
    >
      {props.children}
    </button>
  );
}

/** A message the user should see: errors are announced to screen readers at once. */
export function Notice(props: { error?: string | undefined; info?: string | undefined }) {
  if (props.error)
    return (
      <p className="notice error" role="alert">
        {props.error}
      </p>
    );
  if (props.info)
    return (
      <p className="notice" role="status">
        {props.info}
      </p>
    );
  return null;
}
