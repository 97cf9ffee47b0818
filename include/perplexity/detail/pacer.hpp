// Client-wide pacing of one kind of request: an even spacing (a leaky bucket of size one), and a pause
// that a 429 imposes on every request of that kind, not just the one that got it.
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

    /// When a request asked for at `now` may go, without taking the slot.
    Clock::time_point next_slot(Clock::time_point now) const {
        return std::max({now, paused_until_, next_free_});
    }

    /// Takes the next slot and returns when the request may go.
    Clock::time_point reserve(Clock::time_point now) {
        const Clock::time_point slot = next_slot(now);
        next_free_ = slot + interval_;
        return slot;
    }

    /// No request of this kind goes before `until`.
    void pause_until(Clock::time_point until) { paused_until_ = std::max(paused_until_, until); }

  private:
    Clock::duration interval_ = Clock::duration::zero();
    Clock::time_point next_free_{};
    Clock::time_point paused_until_{};
};

}  // namespace perplexity::detail
