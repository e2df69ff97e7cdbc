// The alert beep of live mode: a short tone from a WebAudio oscillator (no audio file) when new
// threats arrive. Off by default; the "beep" button switches it (the `beep` preference).
// Where it sits: main.js owns one Beeper and calls beep() from its live handler when the count of
// new threats grows; `count` says how many beeps sounded (the browser tests read it).

export class Beeper {
  constructor() {
    this.count = 0;
    this.ctx = null;
    this.last = 0;
  }

  /** Make the audio context; call it from a click so the browser lets it play later. */
  arm() {
    if (this.ctx || typeof AudioContext === 'undefined') return;
    try { this.ctx = new AudioContext(); } catch { this.ctx = null; }
  }

  /** One short tone; at most one a second, however many live merges come in. */
  beep() {
    const now = Date.now();
    if (now - this.last < 1000) return;
    this.last = now;
    this.count++;
    this.arm();
    const ctx = this.ctx;
    if (!ctx) return;
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.0001, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.2, ctx.currentTime + 0.01);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.18);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.2);
  }
}
