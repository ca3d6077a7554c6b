import type { EntryInfo, Sandbox } from "@wrenn/sdk";
import { type FormEvent, useCallback, useEffect, useRef, useState } from "react";
import { messageOf } from "../api/index.js";
import { ActionButton, Notice } from "./action.js";
import { bytes } from "./format.js";

const join = (dir: string, name: string) => `${dir.replace(/\/+$/, "")}/${name}`;
const parent = (dir: string) => dir.replace(/\/[^/]+\/?$/, "") || "/";

/** Streams a file to the user's disk, reporting bytes as they arrive. */
async function download(
  sandbox: Sandbox,
  entry: EntryInfo,
  onProgress: (done: number) => void,
): Promise<void> {
  const stream = await sandbox.files.read(entry.path, { format: "stream" });
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let done = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done: finished, value } = await reader.read();
    if (finished) break;
    chunks.push(new Uint8Array(value));
    done += value.byteLength;
    onProgress(done);
  }
  const url = URL.createObjectURL(new Blob(chunks));
  const a = document.createElement("a");
  a.href = url;
  a.download = entry.name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/**
 * A directory of the sandbox: browse, upload, download (with progress), mkdir, rename, delete,
 * kept current by the file watch (SSE) rather than by polling.
 */
export function FileBrowser({ sandbox }: { sandbox: Sandbox }) {
  const [dir, setDir] = useState("/home/user");
  const [entries, setEntries] = useState<EntryInfo[]>();
  const [error, setError] = useState<string>();
  const [progress, setProgress] = useState<{ label: string; done: number; total?: number }>();
  const [renaming, setRenaming] = useState<string>();
  const [watching, setWatching] = useState(false);
  const upload = useRef<HTMLInputElement>(null);

  const reload = useCallback(async () => {
    try {
      const list = await sandbox.files.list(dir);
      list.sort(
        (a, b) =>
          Number(b.type === "dir") - Number(a.type === "dir") || a.name.localeCompare(b.name),
      );
      setEntries(list);
      setError(undefined);
    } catch (err) {
      setError(messageOf(err));
    }
  }, [sandbox, dir]);

  useEffect(() => {
    void reload();
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    sandbox.files
      .watchDir(
        dir,
        () => {
          // Bursts of events (an upload writes many times) become one reload.
          clearTimeout(timer);
          timer = setTimeout(() => void reload(), 150);
        },
        { signal: abort.signal, timeoutMs: 0 },
      )
      .then(
        () => setWatching(true),
        () => setWatching(false),
      );
    return () => {
      clearTimeout(timer);
      abort.abort();
      setWatching(false);
    };
  }, [sandbox, dir, reload]);

  const onUpload = async () => {
    const files = [...(upload.current?.files ?? [])];
    for (const file of files) {
      setProgress({ label: `Uploading ${file.name}`, done: 0, total: file.size });
      try {
        await sandbox.files.write(join(dir, file.name), file);
        setProgress({ label: `Uploaded ${file.name}`, done: file.size, total: file.size });
      } catch (err) {
        setError(`uploading ${file.name}: ${messageOf(err)}`);
        setProgress(undefined);
      }
    }
    if (upload.current) upload.current.value = "";
    await reload();
  };

  const mkdir = async (e: FormEvent<HTMLFormElement>) => {
    e.preventDefault();
    const form = e.currentTarget;
    const name = String(new FormData(form).get("name")).trim();
    if (!name) return;
    try {
      await sandbox.files.makeDir(join(dir, name));
      form.reset();
      await reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  const rename = async (e: FormEvent<HTMLFormElement>, entry: EntryInfo) => {
    e.preventDefault();
    const name = String(new FormData(e.currentTarget).get("name")).trim();
    try {
      if (name && name !== entry.name) await sandbox.files.rename(entry.path, join(dir, name));
      setRenaming(undefined);
      await reload();
    } catch (err) {
      setError(messageOf(err));
    }
  };

  return (
    <section aria-labelledby="files-title" className="panel">
      <h2 id="files-title">Files</h2>
      <form
        className="row"
        onSubmit={(e) => {
          e.preventDefault();
          setDir(String(new FormData(e.currentTarget).get("dir")) || "/");
        }}
      >
        <label className="grow">
          Directory
          <input name="dir" key={dir} defaultValue={dir} />
        </label>
        <button type="submit">Open</button>
        <button type="button" onClick={() => setDir(parent(dir))} disabled={dir === "/"}>
          Up
        </button>
        <span className="hint">{watching ? "live" : "not watching"}</span>
      </form>
      <div className="row">
        <label>
          Upload files
          <input ref={upload} type="file" multiple onChange={() => void onUpload()} />
        </label>
        <form className="row" onSubmit={mkdir}>
          <label>
            New folder
            <input name="name" />
          </label>
          <button type="submit">Create folder</button>
        </form>
      </div>
      {progress && (
        <div className="progress" role="status">
          <span>{progress.label}</span>
          <progress value={progress.done} max={progress.total || 1} aria-label={progress.label} />
          <span>
            {bytes(progress.done)}
            {progress.total !== undefined ? ` / ${bytes(progress.total)}` : ""}
          </span>
        </div>
      )}
      <Notice error={error} />
      <div className="table-wrap">
        <table>
          <caption className="sr-only">Contents of {dir}</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Size</th>
              <th scope="col">Mode</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {entries?.map((entry) => (
              <tr key={entry.path} data-file={entry.name}>
                <td data-label="Name">
                  {renaming === entry.path ? (
                    <form className="row" onSubmit={(e) => rename(e, entry)}>
                      <input
                        name="name"
                        defaultValue={entry.name}
                        aria-label={`New name of ${entry.name}`}
                        // biome-ignore lint/a11y/noAutofocus: the user just asked to rename it
                        autoFocus
                      />
                      <button type="submit">Save</button>
                      <button type="button" onClick={() => setRenaming(undefined)}>
                        Cancel
                      </button>
                    </form>
                  ) : entry.type === "dir" ? (
                    <button type="button" className="link" onClick={() => setDir(entry.path)}>
                      {entry.name}/
                    </button>
                  ) : (
                    entry.name
                  )}
                </td>
                <td data-label="Size">{entry.type === "dir" ? "" : bytes(entry.size)}</td>
                <td data-label="Mode">
                  <code>{entry.permissions}</code>
                </td>
                <td data-label="Actions">
                  <div className="actions">
                    {entry.type === "file" && (
                      <ActionButton
                        label={`Download ${entry.name}`}
                        onError={setError}
                        onAction={async () => {
                          const label = `Downloading ${entry.name}`;
                          await download(sandbox, entry, (done) =>
                            setProgress({ label, done, total: entry.size }),
                          );
                          setProgress({
                            label: `Downloaded ${entry.name}`,
                            done: entry.size,
                            total: entry.size,
                          });
                        }}
                      >
                        Download
                      </ActionButton>
                    )}
                    <button
                      type="button"
                      aria-label={`Rename ${entry.name}`}
                      onClick={() => setRenaming(entry.path)}
                    >
                      Rename
                    </button>
                    <ActionButton
                      danger
                      label={`Delete ${entry.name}`}
                      onError={setError}
                      onAction={async () => {
                        await sandbox.files.remove(entry.path);
                        await reload();
                      }}
                    >
                      Delete
                    </ActionButton>
                  </div>
                </td>
              </tr>
            ))}
            {entries?.length === 0 && (
              <tr>
                <td colSpan={4}>Empty directory.</td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
