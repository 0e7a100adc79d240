/** What the page knows about templates: the file a new sandbox starts with, and how to run a file. */

interface Starter {
  file: string;
  content: string;
}

const STARTERS: Record<string, Starter> = {
  python: {
    file: 'main.py',
    content: 'import platform\n\nprint(f"Hello from Omega! Python {platform.python_version()}")\n',
  },
  node: {
    file: 'index.js',
    content: "console.log(`Hello from Omega! Node ${process.version}`);\n",
  },
};

export function starterFor(template: string): Starter | null {
  return STARTERS[template] ?? null;
}

/** A shell word: left bare when it is plainly safe, else single-quoted. */
export function shellQuote(s: string): string {
  return /^[\w./@%+=:,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The command the Run button types for `path` (by extension), else the template's starter's, else null. */
export function runCommand(path: string | null, template: string): string | null {
  const byExt = (p: string): string | null => {
    const ext = p.slice(p.lastIndexOf('.') + 1).toLowerCase();
    if (ext === 'py') return `python3 ${shellQuote(p)}`;
    if (['js', 'mjs', 'cjs'].includes(ext)) return `node ${shellQuote(p)}`;
    if (ext === 'sh') return `bash ${shellQuote(p)}`;
    return null;
  };
  const own = path ? byExt(path) : null;
  if (own) return own;
  const starter = starterFor(template);
  return starter ? byExt(starter.file) : null;
}
