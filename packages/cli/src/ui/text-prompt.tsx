import { Text, useApp, useInput } from "ink";
import { useEffect, useRef, useState } from "react";

export interface TextPromptProps {
  label: string;
  /** Show one • per character instead of the text (API keys). */
  mask?: boolean;
  onSubmit(value: string | undefined): void;
}

/** One line of input; Enter submits, Esc or Ctrl-C cancels (undefined). */
export function TextPrompt({ label, mask = false, onSubmit }: TextPromptProps) {
  const { exit } = useApp();
  // Keys can arrive faster than renders (a paste, then Enter): the ref is always current, the
  // state only drives what is drawn.
  const typed = useRef("");
  const submitted = useRef(false);
  const [value, setValue] = useState("");
  const [done, setDone] = useState(false);
  useEffect(() => {
    if (done) exit();
  }, [done, exit]);
  useInput((input, key) => {
    if (submitted.current) return;
    if (key.return || key.escape || (key.ctrl && input === "c")) {
      submitted.current = true;
      setDone(true);
      onSubmit(key.return ? typed.current : undefined);
      return;
    }
    if (key.backspace || key.delete) typed.current = typed.current.slice(0, -1);
    else if (!key.ctrl && !key.meta && input) typed.current += input.replace(/[\r\n]/g, "");
    setValue(typed.current);
  });
  return (
    <Text>
      {label} {mask ? "•".repeat(value.length) : value}
      {done ? "" : <Text inverse> </Text>}
    </Text>
  );
}
