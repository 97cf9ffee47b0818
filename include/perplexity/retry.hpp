/// @file
/// RetryPolicy, when and how long to wait before sending a failed request again.
///
/// Everything here is a pure function of the policy, the attempt number, the server's hints and a
/// random number, so it is tested without sockets or clocks, and safe to call from any thread.
#pragma once

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace perplexity {

/// How single requests (one create, get or list) are retried. Defaults follow the official SDK's
/// backoff but clamp the server's hints, which the SDK does not. What is retried: transport failures
/// and timeouts, and the statuses of `is_retryable_status` unless `x-should-retry` says otherwise;
/// each only when the request is safe to send again (see Client::create). A retry whose wait would end
/// after the operation's deadline is not made: the last failure is returned instead (a poll of `wait`
/// or `run` then ends the wait with `ErrorKind::wait_deadline`, quoting that failure).
struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries.
    unsigned max_attempts = 4;
    /// Backoff before the first retry when the server gave no hint.
    std::chrono::milliseconds initial_backoff = std::chrono::milliseconds(500);
    /// Each further retry waits this many times longer...
    double backoff_growth = 2.0;
    /// ...up to this.
    std::chrono::milliseconds max_backoff = std::chrono::seconds(8);
    /// A backoff is scaled by a random factor in [1 - jitter, 1] so that clients do not retry in lockstep.
    double jitter = 0.25;
    /// Server hints (retry-after-ms, retry-after) are clamped to [min_hint, max_hint]: a hint of zero
    /// must not become a busy loop, and a hint of an hour must not hang a job silently.
    std::chrono::milliseconds min_hint = std::chrono::milliseconds(50);
    /// The longest server hint obeyed; see `min_hint`.
    std::chrono::milliseconds max_hint = std::chrono::seconds(60);
};

/// Scales `delay` by a factor in [1 - jitter, 1] chosen by `random_unit` in [0, 1).
inline std::chrono::milliseconds apply_jitter(std::chrono::milliseconds delay, double jitter,
                                              double random_unit) {
    jitter = std::clamp(jitter, 0.0, 1.0);
    random_unit = std::clamp(random_unit, 0.0, 1.0);
    const double factor = 1.0 - jitter * random_unit;
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(
        std::llround(static_cast<double>(delay.count()) * factor)));
}

/// `initial * growth^(n-1)` capped at `cap`, without overflowing for large n.
inline std::chrono::milliseconds capped_exponential(std::chrono::milliseconds initial, double growth,
                                                    std::chrono::milliseconds cap, unsigned n) {
    double delay = static_cast<double>(initial.count());
    for (unsigned i = 1; i < n && delay < static_cast<double>(cap.count()); ++i) {
        delay *= std::max(growth, 1.0);
    }
    return std::min(cap, std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(delay)));
}

/// The backoff before retry number `retry` (1 for the first retry) when the server gave no hint.
inline std::chrono::milliseconds backoff_delay(const RetryPolicy& policy, unsigned retry,
                                               double random_unit) {
    return apply_jitter(
        capped_exponential(policy.initial_backoff, policy.backoff_growth, policy.max_backoff, retry),
        policy.jitter, random_unit);
}

/// Whether an HTTP status is worth retrying: 408, 409, 429 and every 5xx. `x-should-retry` overrides
/// it (see parse_should_retry).
constexpr bool is_retryable_status(int status) noexcept {
    return status == 408 || status == 409 || status == 429 || status >= 500;
}

/// Reads `x-should-retry`: the server's own verdict, which overrides the status ("true" or "false").
inline std::optional<bool> parse_should_retry(std::string_view header) {
    if (header == "true") {
        return true;
    }
    if (header == "false") {
        return false;
    }
    return std::nullopt;
}

namespace detail {

inline std::optional<long long> parse_decimal(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    long long value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
        return std::nullopt;
    }
    return value;
}

/// Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the HTTP date form of retry-after. In
/// seconds, so that any four-digit year fits (system_clock's nanoseconds end in 2262).
inline std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text) {
    static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    // Fixed layout: "Www, DD Mmm YYYY HH:MM:SS GMT"; every separator and digit in its place.
    if (text.size() != 29 || text.substr(3, 2) != ", " || text[7] != ' ' || text[11] != ' ' ||
        text[16] != ' ' || text[19] != ':' || text[22] != ':' || text.substr(25) != " GMT") {
        return std::nullopt;
    }
    const auto number = [&](std::size_t at, std::size_t length) -> std::optional<int> {
        int value = 0;
        for (const char c : text.substr(at, length)) {
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            value = value * 10 + (c - '0');
        }
        return value;
    };
    const auto day = number(5, 2), year = number(12, 4), hour = number(17, 2), minute = number(20, 2),
               second = number(23, 2);
    const auto month_at = std::find(std::begin(months), std::end(months), text.substr(8, 3));
    if (!day || !year || !hour || !minute || !second || month_at == std::end(months)) {
        return std::nullopt;
    }
    const std::chrono::year_month_day date{
        std::chrono::year(*year),
        std::chrono::month(static_cast<unsigned>(month_at - std::begin(months) + 1)),
        std::chrono::day(static_cast<unsigned>(*day))};
    if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60) {
        return std::nullopt;
    }
    return std::chrono::sys_days(date) + std::chrono::hours(*hour) + std::chrono::minutes(*minute) +
           std::chrono::seconds(*second);
}

}  // namespace detail

/// The server's wait hint, from `retry-after-ms` (milliseconds) or else `retry-after` (seconds, or an
/// HTTP date measured against `now`). A date in the past means "now" (zero). Unparseable or negative
/// hints are ignored.
inline std::optional<std::chrono::milliseconds> parse_retry_hint(std::string_view retry_after_ms,
                                                                 std::string_view retry_after,
                                                                 std::chrono::system_clock::time_point now) {
    if (const auto ms = detail::parse_decimal(retry_after_ms); ms && *ms >= 0) {
        return std::chrono::milliseconds(*ms);
    }
    if (const auto seconds = detail::parse_decimal(retry_after); seconds && *seconds >= 0) {
        return std::chrono::milliseconds(std::min<long long>(*seconds, 1LL << 40) * 1000);
    }
    if (const auto date = detail::parse_http_date(retry_after)) {
        // Both sides in seconds, so that no date can overflow the arithmetic.
        const auto seconds = (*date - std::chrono::floor<std::chrono::seconds>(now)).count();
        return std::chrono::milliseconds(std::clamp<long long>(seconds, 0, 1LL << 40) * 1000);
    }
    return std::nullopt;
}

/// The wait before retry number `retry`: the server's hint clamped to the policy, or the backoff.
inline std::chrono::milliseconds retry_delay(const RetryPolicy& policy, unsigned retry,
                                             std::optional<std::chrono::milliseconds> hint,
                                             double random_unit) {
    if (hint) {
        return std::clamp(*hint, policy.min_hint, std::max(policy.min_hint, policy.max_hint));
    }
    return backoff_delay(policy, retry, random_unit);
}

}  // namespace perplexity
