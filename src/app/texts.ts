/**
 * Built-in calibration and evaluation texts. They are not part of the app's files: they are
 * fetched from a data mirror (`{data base}/{path}`, by default `{origin}/data`, where the
 * server mirrors ../shared/data) and kept in IndexedDB after the first use, so they work
 * offline afterwards. A person can always paste or upload their own text instead.
 */
export interface BuiltinText {
  id: string;
  label: string;
  path: string;
  /** what it is good for */
  note: string;
  /** its size in bytes (run time estimates before it is read) */
  bytes: number;
}

export const TEXTS: BuiltinText[] = [
  {
    id: 'tinystories-calib',
    label: 'TinyStories, calibration half',
    path: 'tinystories/calib.txt',
    bytes: 13_367,
    note: '10 TinyStories validation stories (13 KB): calibrate on these',
  },
  {
    id: 'tinystories-eval',
    label: 'TinyStories, evaluation half',
    path: 'tinystories/eval.txt',
    bytes: 13_988,
    note: 'the other 7 stories (14 KB): evaluate on these',
  },
  {
    id: 'wikitext2-test',
    label: 'WikiText-2 test',
    path: 'wikitext2/wikitext2_test_hf_joined.txt',
    bytes: 1_296_370,
    note: 'the papers’ evaluation text (1.3 MB, rows joined with blank lines); slow on larger models',
  },
];

export const DEFAULT_CALIB = 'tinystories-calib';
export const DEFAULT_EVAL = 'tinystories-eval';

export const textById = (id: string) => TEXTS.find((t) => t.id === id);

const DATA_KEY = 'lopper.dataBase';

/** Where built-in texts come from: ?data=…, else a saved setting, else {origin}/data. */
export function dataBase(): string {
  const fromUrl = new URLSearchParams(location.search).get('data');
  let saved: string | null = null;
  try {
    saved = localStorage.getItem(DATA_KEY);
  } catch {
    // storage blocked
  }
  return (fromUrl || saved || `${location.origin}/data`).replace(/\/+$/, '');
}

export function textUrl(t: BuiltinText): string {
  return `${dataBase()}/${t.path}`;
}
