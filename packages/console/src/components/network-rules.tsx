import type { Sandbox as SdkSandbox } from "@wrenn/sdk";
import { type FormEvent, useId, useState } from "react";
import type { Sandbox } from "../api/index.js";
import { Notice, useAction } from "./action.js";

type Network = Sandbox["network"];

/** Rules typed one per line (commas and spaces also separate); blank entries dropped. */
const rulesOf = (text: FormDataEntryValue | null): string[] =>
  String(text ?? "")
    .split(/[\s,]+/)
    .filter(Boolean);

/** What {@link NetworkFields} hold, as the SDK takes it (create and `setNetwork`). */
export function readNetwork(form: FormData) {
  return {
    allowInternetAccess: form.get("internet") === "on",
    allowOut: rulesOf(form.get("allowOut")),
    denyOut: rulesOf(form.get("denyOut")),
  };
}

/**
 * Internet access and egress rules as form fields, for the create form and the sandbox page. The
 * server checks every entry and answers which one it refuses and why.
 */
export function NetworkFields(props: {
  initial?: Network;
  disabled?: boolean;
  /** Under a "Network" heading the caption is for screen readers only. */
  quietLegend?: boolean;
}) {
  const { initial } = props;
  const hint = useId();
  return (
    <fieldset className="network-fields" disabled={props.disabled} aria-describedby={hint}>
      <legend className={props.quietLegend ? "sr-only" : undefined}>Network</legend>
      <label>
        <input
          type="checkbox"
          name="internet"
          defaultChecked={initial?.allow_internet_access ?? true}
        />{" "}
        Internet access
      </label>
      <label>
        Allowed destinations (one per line)
        <textarea name="allowOut" rows={2} defaultValue={initial?.allow_out.join("\n")} />
      </label>
      <label>
        Denied destinations (one per line)
        <textarea name="denyOut" rows={2} defaultValue={initial?.deny_out.join("\n")} />
      </label>
      <p className="hint" id={hint}>
        CIDRs, IPv4 addresses or domain names (<code>*.example.com</code> for its subdomains). With
        allowed destinations only those are reachable; a denied one wins over an allowed one; no
        internet access cuts everything.
      </p>
    </fieldset>
  );
}

/**
 * The sandbox page's network policy: shown as the server has it, replaced live on Save. The
 * fields start from the server's rules and follow a change of them (after Save, or made
 * elsewhere) only while the user has not edited them: the list polls the sandbox every few
 * seconds, and a reset then would drop what is being typed and the focused Save button.
 */
export function NetworkPanel(props: {
  sandbox: Sandbox;
  sdk: SdkSandbox | undefined;
  onChange: () => void;
}) {
  const { sandbox, sdk } = props;
  const { network } = sandbox;
  const [saved, setSaved] = useState(false);
  // Shown by the form it concerns, and gone once a save succeeds.
  const [error, setError] = useState<string>();
  const [busy, run] = useAction(setError);
  // The rules the fields were last reset to, and whether the user changed them since.
  const [shown, setShown] = useState(network);
  const [dirty, setDirty] = useState(false);
  if (!dirty && JSON.stringify(shown) !== JSON.stringify(network)) setShown(network);
  const live = sandbox.state === "running" || sandbox.state === "paused";
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    setSaved(false);
    if (!sdk) {
      setError("Not connected to the sandbox yet: save again in a moment.");
      return;
    }
    const rules = readNetwork(new FormData(e.currentTarget));
    setError(undefined);
    const ok = await run(() => sdk.setNetwork(rules));
    if (!ok) return;
    // The server's answer (normalised) replaces the fields once the page has it.
    setDirty(false);
    setSaved(true);
    props.onChange();
  };
  return (
    <section aria-labelledby="network-title" className="panel">
      <h2 id="network-title">Network</h2>
      <p data-testid="network-summary">
        {!network.allow_internet_access
          ? "No internet access."
          : network.allow_out.length > 0
            ? `Only to: ${network.allow_out.join(", ")}.`
            : "Internet access."}
        {network.allow_internet_access &&
          network.deny_out.length > 0 &&
          ` Never to: ${network.deny_out.join(", ")}.`}
      </p>
      <Notice error={error} />
      <form
        className="grid-form"
        onSubmit={submit}
        onChange={() => {
          setDirty(true);
          setSaved(false);
        }}
        // New fields only for another sandbox or new rules from the server while not edited.
        key={`${sandbox.id} ${JSON.stringify(shown)}`}
      >
        <NetworkFields initial={shown} disabled={!live} quietLegend />
        <div className="row">
          {/* Until the SDK has connected (a moment after the page shows). */}
          <button type="submit" disabled={busy || !live || !sdk} aria-busy={busy}>
            {busy ? "Saving…" : "Save network rules"}
          </button>
          {saved && <span role="status">Network rules saved.</span>}
        </div>
      </form>
    </section>
  );
}
