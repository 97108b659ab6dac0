import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Clock, Throttle } from '../src/throttle';

/** A clock moved by hand. */
class FakeClock implements Clock {
  time = 0;
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private next = 0;
  now = () => this.time;
  setTimeout = (fn: () => void, ms: number) => {
    this.timers.push({ at: this.time + ms, fn, id: ++this.next });
    return this.next;
  };
  clearTimeout = (id: unknown) => {
    this.timers = this.timers.filter((t) => t.id !== id);
  };
  advance(ms: number): void {
    const until = this.time + ms;
    for (let t = this.due(until); t; t = this.due(until)) {
      this.timers = this.timers.filter((x) => x !== t);
      this.time = t.at;
      t.fn();
    }
    this.time = until;
  }
  private due(until: number) {
    return this.timers.filter((t) => t.at <= until).sort((a, b) => a.at - b.at)[0];
  }
}

describe('Throttle', () => {
  it('calls at once, then at most once per interval, and the last call is never lost', () => {
    const clock = new FakeClock();
    const calls: number[] = [];
    const throttle = new Throttle(() => calls.push(clock.time), 400, clock);
    for (let t = 0; t < 1000; t += 50) {
      throttle.run(); // a canvas every 50 ms for a second
      clock.advance(50);
    }
    clock.advance(1000);
    assert.deepEqual(calls, [0, 400, 800, 1200]);
  });

  it('flush calls now and drops the scheduled call; cancel drops it', () => {
    const clock = new FakeClock();
    let calls = 0;
    const throttle = new Throttle(() => calls++, 400, clock);
    throttle.run(); // called
    throttle.run(); // scheduled
    throttle.flush(); // called, the scheduled one dropped
    assert.equal(calls, 2);
    throttle.run(); // scheduled: the last call was just now
    throttle.cancel();
    clock.advance(1000);
    assert.equal(calls, 2);
  });
});
