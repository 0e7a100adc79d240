import { javascript } from '@codemirror/lang-javascript';
import { python } from '@codemirror/lang-python';
import { Annotation, Compartment, EditorState, type Extension } from '@codemirror/state';
import { keymap } from '@codemirror/view';
import { indentWithTab } from '@codemirror/commands';
import { oneDark } from '@codemirror/theme-one-dark';
import { basicSetup, EditorView } from 'codemirror';
import { debounce } from './dom.js';

/**
 * CodeMirror on one workspace file at a time. Edits are saved 300 ms after
 * the last keystroke. A change made elsewhere (another tab, a program in the
 * sandbox) is read back and applied as one minimal change, so the cursor
 * stays where it was; while this tab has edits not yet saved, its own save
 * wins (last writer wins, as in the worker).
 */

export type SaveState = 'saved' | 'unsaved' | 'saving' | 'error' | 'none';

export interface EditorOptions {
  read(path: string): Promise<string>;
  write(path: string, content: string): Promise<void>;
  onSaveState(state: SaveState, detail?: string): void;
}

const SAVE_AFTER_MS = 300;
/** Marks changes that came from the sandbox, which must not be saved back. */
const fromRemote = Annotation.define<boolean>();

export function languageFor(path: string): Extension {
  const ext = path.slice(path.lastIndexOf('.') + 1).toLowerCase();
  if (ext === 'py') return python();
  if (['js', 'mjs', 'cjs'].includes(ext)) return javascript();
  if (ext === 'jsx') return javascript({ jsx: true });
  if (['ts', 'mts', 'cts'].includes(ext)) return javascript({ typescript: true });
  if (ext === 'tsx') return javascript({ typescript: true, jsx: true });
  if (ext === 'json') return javascript();
  return [];
}

export class Editor {
  readonly view: EditorView;
  path: string | null = null;
  private readonly language = new Compartment();
  private readonly editable = new Compartment();
  private saving: Promise<void> | null = null;
  private unsaved = false;
  private readonly scheduleSave = debounce(() => void this.save(), SAVE_AFTER_MS);

  constructor(
    parent: HTMLElement,
    private readonly opts: EditorOptions,
  ) {
    this.view = new EditorView({
      parent,
      state: this.state('', null),
    });
  }

  private state(doc: string, path: string | null): EditorState {
    return EditorState.create({
      doc,
      extensions: [
        basicSetup,
        keymap.of([indentWithTab]),
        oneDark,
        EditorView.theme({ '&': { height: '100%' }, '.cm-scroller': { fontFamily: 'var(--mono)' } }),
        this.language.of(path ? languageFor(path) : []),
        this.editable.of(EditorView.editable.of(path !== null)),
        EditorView.updateListener.of((u) => {
          if (!u.docChanged || !this.path) return;
          if (u.transactions.some((tr) => tr.annotation(fromRemote))) return;
          this.unsaved = true;
          this.opts.onSaveState('unsaved');
          this.scheduleSave();
        }),
      ],
    });
  }

  get content(): string {
    return this.view.state.doc.toString();
  }

  /** Whether this tab has changes not yet written (waiting, being written, or a write that failed). */
  get dirty(): boolean {
    return this.unsaved;
  }

  async open(path: string): Promise<void> {
    await this.flush();
    const content = await this.opts.read(path);
    this.scheduleSave.cancel();
    this.unsaved = false;
    this.path = path;
    this.view.setState(this.state(content, path));
    this.opts.onSaveState('saved');
  }

  /** No file open (it was deleted, or the sandbox is gone). */
  close(): void {
    this.scheduleSave.cancel();
    this.unsaved = false;
    this.path = null;
    this.view.setState(this.state('', null));
    this.opts.onSaveState('none');
  }

  setReadOnly(readOnly: boolean): void {
    this.view.dispatch({ effects: this.editable.reconfigure(EditorView.editable.of(!readOnly && this.path !== null)) });
  }

  /** Saves now whatever is not saved yet (also after a failed write), and waits for it. */
  async flush(): Promise<void> {
    this.scheduleSave.cancel();
    if (this.saving) await this.saving;
    if (this.unsaved) await this.save();
  }

  private async save(): Promise<void> {
    // One write at a time; what changes meanwhile is written by the next call.
    while (this.saving) await this.saving;
    const path = this.path;
    if (!path || !this.unsaved) return;
    const content = this.content;
    this.opts.onSaveState('saving');
    let done!: () => void;
    this.saving = new Promise<void>((r) => (done = r));
    try {
      await this.opts.write(path, content);
      if (this.path !== path) return;
      if (this.content === content) {
        this.unsaved = false;
        this.opts.onSaveState('saved');
      } else if (!this.scheduleSave.pending()) {
        this.scheduleSave();
      }
    } catch (err) {
      if (this.path === path) this.opts.onSaveState('error', (err as Error).message);
    } finally {
      this.saving = null;
      done();
    }
  }

  /** The open file changed in the sandbox: read it back unless this tab is about to overwrite it. */
  async reload(): Promise<void> {
    const path = this.path;
    if (!path || this.dirty) return;
    const content = await this.opts.read(path);
    if (this.path !== path || this.dirty) return;
    const current = this.content;
    if (content === current) return;
    // One change covering only what differs: the selection maps through it and stays put.
    let from = 0;
    while (from < current.length && from < content.length && current[from] === content[from]) from++;
    let endCur = current.length;
    let endNew = content.length;
    while (endCur > from && endNew > from && current[endCur - 1] === content[endNew - 1]) {
      endCur--;
      endNew--;
    }
    this.view.dispatch({ changes: { from, to: endCur, insert: content.slice(from, endNew) }, annotations: fromRemote.of(true) });
  }

  destroy(): void {
    this.scheduleSave.cancel();
    this.view.destroy();
  }
}
