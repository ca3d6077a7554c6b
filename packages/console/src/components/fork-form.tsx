import type { Sandbox as SdkSandbox } from "@wrenn/sdk";
import { type FormEvent, useState } from "react";
import { Link } from "../router/index.js";
import { useAction } from "./action.js";

/** The server makes 1 to this many forks per call. */
const MAX_FORKS = 10;

/**
 * Forks a running sandbox (`sandbox.fork(n)`): new sandboxes with its files as they are now, on
 * its host; it keeps running. The new ones are listed as links.
 */
export function ForkForm({
  sandbox,
  onError,
}: {
  sandbox: SdkSandbox;
  onError: (m: string) => void;
}) {
  const [forks, setForks] = useState<string[]>([]);
  const [busy, run] = useAction(onError);
  const submit = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const count = Number(new FormData(e.currentTarget).get("count"));
    await run(async () => {
      const made = await sandbox.fork(count);
      setForks(made.map((s) => s.sandboxId));
    });
  };
  return (
    <form className="row" onSubmit={submit}>
      <label>
        Number of forks
        <input name="count" type="number" min={1} max={MAX_FORKS} defaultValue={1} required />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Forking…" : "Fork"}
      </button>
      {forks.length > 0 && (
        <span role="status">
          Forked into{" "}
          {forks.map((id, i) => (
            <span key={id}>
              {i > 0 && ", "}
              <Link href={`/sandboxes/${id}`}>{id}</Link>
            </span>
          ))}
          .
        </span>
      )}
    </form>
  );
}
