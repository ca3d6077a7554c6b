import { type AnchorHTMLAttributes, type MouseEvent, useEffect, useState } from "react";

// Client routes are plain paths; the server answers any of them with index.html.

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => {
  for (const l of listeners) l();
});

export function navigate(path: string): void {
  if (path === window.location.pathname + window.location.search) return;
  window.history.pushState(null, "", path);
  for (const l of listeners) l();
}

/** The current path; re-renders on navigation. */
export function usePath(): string {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const update = () => setPath(window.location.pathname);
    listeners.add(update);
    return () => {
      listeners.delete(update);
    };
  }, []);
  return path;
}

/** An ordinary link (open in a new tab works) that navigates in place on a plain click. */
export function Link({
  href,
  onClick: onClickProp,
  ...rest
}: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  // Enter on a focused link fires `click` too, so keyboard users get the same navigation.
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    onClickProp?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
    e.preventDefault();
    navigate(href);
  };
  return <a {...rest} href={href} onClick={onClick} />;
}
