import { Text, useApp, useInput } from "ink";
import { useEffect, useRef, useState } from "react";

export interface ConfirmProps {
  message: string;
  onAnswer(yes: boolean): void;
}

/** A y/N question; anything but y (Enter, n, Esc, Ctrl-C) means no. */
export function Confirm({ message, onAnswer }: ConfirmProps) {
  const { exit } = useApp();
  const [answer, setAnswer] = useState<boolean>();
  // Keys can arrive faster than renders: only the first answer counts.
  const answered = useRef(false);
  // Exit after the answer is drawn, so it stays on screen.
  useEffect(() => {
    if (answer !== undefined) exit();
  }, [answer, exit]);
  useInput((input, key) => {
    if (answered.current) return;
    const yes = input.toLowerCase() === "y";
    if (
      !yes &&
      !key.return &&
      !key.escape &&
      input.toLowerCase() !== "n" &&
      !(key.ctrl && input === "c")
    )
      return;
    answered.current = true;
    setAnswer(yes);
    onAnswer(yes);
  });
  return (
    <Text>
      {message} <Text dimColor>(y/N)</Text>
      {answer === undefined ? "" : answer ? " yes" : " no"}
    </Text>
  );
}
