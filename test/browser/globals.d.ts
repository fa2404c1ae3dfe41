/** ../shared as a URL path on the Vitest browser server (`/@fs/…/shared`), set in vitest.config.ts. */
declare const __LOPPER_SHARED_FS__: string;
