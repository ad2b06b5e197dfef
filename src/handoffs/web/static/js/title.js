// The tab title shows how many arrivals came in while the tab was hidden, flashing
// (unless the user prefers reduced motion) until the tab is looked at again.

const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

export class UnseenTitle {
  constructor() {
    this.base = document.title;
    this.count = 0;
    this.timer = null;
    this.showCount = true;
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.reset();
    });
  }

  /** One more arrival; counted only while the tab is hidden. */
  bump() {
    if (!document.hidden) return;
    this.count += 1;
    this.render();
    if (!this.timer && !reducedMotion.matches) {
      this.timer = setInterval(() => {
        this.showCount = !this.showCount;
        this.render();
      }, 1000);
    }
  }

  render() {
    const label = `(${this.count}) New ${this.count === 1 ? "arrival" : "arrivals"} · ${this.base}`;
    document.title = this.showCount || reducedMotion.matches ? label : this.base;
  }

  reset() {
    clearInterval(this.timer);
    this.timer = null;
    this.count = 0;
    this.showCount = true;
    document.title = this.base;
  }
}
