import { type ReactNode, useEffect, useRef, useState } from "react";
import { messageOf } from "../api/index.js";

/**
 * Runs an async action with `busy` set meanwhile; a failure goes to `onError` as its message.
 * `run` resolves true when the action succeeded.
 */
export function useAction(
  onError: (message: string) => void,
): [busy: boolean, run: (action: () => Promise<unknown>) => Promise<boolean>] {
  const [busy, setBusy] = useState(false);
  const run = async (action: () => Promise<unknown>) => {
    setBusy(true);
    try {
      await action();
      return true;
    } catch (err) {
      onError(messageOf(err));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return [busy, run];
}

/** A button that runs an async action, disables itself meanwhile and reports a failure. */
export function ActionButton(props: {
  onAction: () => Promise<unknown>;
  onError: (message: string) => void;
  children: ReactNode;
  label?: string;
  danger?: boolean;
  disabled?: boolean;
}) {
  const [busy, run] = useAction(props.onError);
  return (
    <button
      type="button"
      className={props.danger ? "danger" : undefined}
      aria-label={props.label}
      aria-busy={busy}
      disabled={busy || props.disabled}
      onClick={() => run(props.onAction)}
    >
      {props.children}
    </button>
  );
}

/**
 * A destructive action asked twice: the first press shows the question with a confirm button
 * (focused, so Enter confirms and Tab reaches "Keep"); nothing happens until it is pressed. Once
 * the action is done (or failed) the question closes.
 */
export function ConfirmButton(props: {
  onAction: () => Promise<unknown>;
  onError: (message: string) => void;
  children: ReactNode;
  label: string;
  question: string;
  disabled?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const group = useRef<HTMLFieldSetElement>(null);
  useEffect(() => {
    if (asking) group.current?.querySelector("button")?.focus();
  }, [asking]);
  if (!asking)
    return (
      <button
        type="button"
        className="danger"
        aria-label={props.label}
        disabled={props.disabled}
        onClick={() => setAsking(true)}
      >
        {props.children}
      </button>
    );
  return (
    <fieldset className="actions" ref={group}>
      <legend>{props.question}</legend>
      <ActionButton
        danger
        label={`Confirm: ${props.label}`}
        onAction={async () => {
          await props.onAction();
          setAsking(false);
        }}
        onError={(message) => {
          setAsking(false);
          props.onError(message);
        }}
      >
        Yes
      </ActionButton>
      <button type="button" onClick={() => setAsking(false)}>
        Keep
      </button>
    </fieldset>
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
