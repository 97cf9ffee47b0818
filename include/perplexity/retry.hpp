/// @file
/// RetryPolicy, when and how long to wait before sending a failed request again.
///
/// Everything here is a pure function of the policy, the attempt number, the server's hints and a
/// random number, so it is tested without sockets or clocks, and safe to call from any thread.
#pragma once

#include <perplexity/backoff.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
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
    /// The wait before retry number n when the server gave no hint: delay n of this Backoff. Default
    /// 500 ms, growing 2 times per retry up to 8 s, with jitter 0.25 (each wait is scaled by a random
    /// factor in [0.75, 1]).
    Backoff backoff{.initial = std::chrono::milliseconds(500),
                    .growth = 2.0,
                    .max = std::chrono::seconds(8),
                    .jitter = 0.25};
    /// Server hints (retry-after-ms, retry-after) are clamped to [min_hint, max_hint]: a hint of zero
    /// must not become a busy loop, and a hint of an hour must not hang a job silently.
    std::chrono::milliseconds min_hint = std::chrono::milliseconds(50);
    /// The longest server hint obeyed; see `min_hint`.
    std::chrono::milliseconds max_hint = std::chrono::seconds(60);
};

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

/// The wait before retry number `retry` (1 for the first retry): the server's hint clamped to
/// [min_hint, max_hint], or else `backoff_delay(policy.backoff, retry, random_unit)`.
inline std::chrono::milliseconds retry_delay(const RetryPolicy& policy, unsigned retry,
                                             std::optional<std::chrono::milliseconds> hint,
                                             double random_unit) {
    if (hint) {
        return std::clamp(*hint, policy.min_hint, std::max(policy.min_hint, policy.max_hint));
    }
    return backoff_delay(policy.backoff, retry, random_unit);
}

}  // namespace perplexity
