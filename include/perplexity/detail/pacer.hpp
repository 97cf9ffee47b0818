// Client-wide pacing of one kind of request: an even spacing (a leaky bucket of size one), and a pause
// that a 429 imposes on every request of that kind, not just the one that got it.
//
// Pure: the time is always an argument, so the request machine and its tests drive it without a clock.
#pragma once

#include <algorithm>
#include <chrono>

namespace perplexity::detail {

class Pacer {
  public:
    using Clock = std::chrono::steady_clock;

    /// Requests per minute; 0 turns spacing off (pauses still apply).
    void set_rate(unsigned per_minute) {
        interval_ = per_minute == 0 ? Clock::duration::zero()
                                    : std::chrono::duration_cast<Clock::duration>(std::chrono::minutes(1)) /
                                          static_cast<Clock::duration::rep>(per_minute);
    }

    /// When a request asked for at `now` may go, without taking the slot. A request that already sat
    /// out a 429 of its own does not honour the pause: its own jittered delay is what spreads the
    /// retries, and waiting for the longest pause of all would send them together again.
    Clock::time_point next_slot(Clock::time_point now, bool honour_pause = true) const {
        return std::max({now, honour_pause ? paused_until_ : now, next_free_});
    }

    /// Takes `slot` (from next_slot): the next request goes one interval later at the earliest.
    void take(Clock::time_point slot) { next_free_ = std::max(next_free_, slot + interval_); }

    /// Takes the next slot for a request asked for at `now` and returns when it may go.
    Clock::time_point reserve(Clock::time_point now, bool honour_pause = true) {
        const Clock::time_point slot = next_slot(now, honour_pause);
        take(slot);
        return slot;
    }

    /// No request of this kind goes before `until`.
    void pause_until(Clock::time_point until) { paused_until_ = std::max(paused_until_, until); }

    /// Until when requests are paused (a time in the past when they are not).
    Clock::time_point paused_until() const { return paused_until_; }

  private:
    Clock::duration interval_ = Clock::duration::zero();
    Clock::time_point next_free_{};
    Clock::time_point paused_until_{};
};

}  // namespace perplexity::detail
