import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** Read by @sveltejs/vite-plugin-svelte and svelte-check. */
export default {
  preprocess: vitePreprocess(),
};
