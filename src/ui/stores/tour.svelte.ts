/**
 * The guided tour's state: which step is open (null: none), kept in the URL's hash
 * (`#tour=3`), so a teacher links a step and the browser's back button walks the steps.
 */
import { TOUR_STEPS, tourHash, tourStepFromHash } from '../tour/steps';

export class TourStore {
  /** the open step (0-based), or null */
  step = $state<number | null>(null);
  readonly count = TOUR_STEPS.length;

  /** Follow the hash (on load and when it changes); returns a function that stops following. */
  follow(): () => void {
    const read = () => {
      const i = tourStepFromHash(location.hash);
      if (i !== null) this.step = i;
      else if (this.step !== null && /^#?tour=/.test(location.hash) === false) this.step = null;
    };
    read();
    addEventListener('hashchange', read);
    return () => removeEventListener('hashchange', read);
  }

  open(index: number): void {
    const i = Math.min(this.count - 1, Math.max(0, index));
    this.step = i;
    if (location.hash !== tourHash(i)) history.pushState(history.state, '', tourHash(i));
  }

  next(): void {
    if (this.step !== null && this.step < this.count - 1) this.open(this.step + 1);
  }

  back(): void {
    if (this.step !== null && this.step > 0) this.open(this.step - 1);
  }

  close(): void {
    this.step = null;
    if (location.hash) history.replaceState(history.state, '', location.pathname + location.search);
  }
}
