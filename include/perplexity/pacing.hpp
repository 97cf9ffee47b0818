/// @file
/// The API's create rate limits, for ClientOptions::create_requests_per_minute.
#pragma once

#include <array>

namespace perplexity {

/// Creates per minute allowed at each usage tier 0..5 (see the API's rate limit page). Gets (6000 a
/// minute) and lists (3000) are rarely the limit.
inline constexpr std::array<unsigned, 6> create_rate_by_tier = {5, 10, 20, 40, 60, 100};

/// The create rate of a usage tier (0..5); tiers above 5 get tier 5's rate.
constexpr unsigned create_rate_for_tier(unsigned tier) noexcept {
    return create_rate_by_tier[tier < create_rate_by_tier.size() ? tier : create_rate_by_tier.size() - 1];
}

}  // namespace perplexity
