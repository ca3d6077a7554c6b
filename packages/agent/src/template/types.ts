export type TemplateKind = "base" | "snapshot";

/** What template.json holds, in the agent's terms. */
export interface TemplateInfo {
  name: string;
  kind: TemplateKind;
  /** Template names whose rootfs stack up to this one, top first; the first is this template. */
  layers: string[];
  /** ISO-8601. */
  createdAt: string;
  /** Allocated bytes of this template's own rootfs (not of the layers below). */
  sizeBytes: number;
  /** Snapshots lock the resources of the sandbox they were taken from. */
  vcpus?: number;
  memoryMb?: number;
  diskSizeMb?: number;
}

export type ProgressFn = (message: string) => void;

export interface BuildContext {
  progress: ProgressFn;
}
