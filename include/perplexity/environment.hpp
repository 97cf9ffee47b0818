/// @file
/// options_from_environment: ClientOptions from PERPLEXITY_* environment variables.
///
/// Apart from `<perplexity/options.hpp>` because it writes to std::clog: only the programs that use it
/// include `<iostream>` (and, with libstdc++ before 13, its static initialiser in every translation
/// unit). `<perplexity/async.hpp>` includes it.
#pragma once

#include <perplexity/events.hpp>
#include <perplexity/options.hpp>

#include <cstdlib>
#include <iostream>
#include <string>
#include <utility>

namespace perplexity {

/// Reads an environment variable, treating unset and empty alike (both give ""). Uses std::getenv, so
/// it must not race with a change to the environment.
inline std::string environment_variable(const char* name) {
    const char* value = std::getenv(name);
    return value == nullptr ? std::string{} : std::string(value);
}

/// Returns `defaults` with `api_key` taken from PERPLEXITY_API_KEY and `base_url` from
/// PERPLEXITY_BASE_URL, each only when the variable is set and not empty, and with `on_event` logging to
/// std::clog when PERPLEXITY_LOG is `info` or `debug` (see LogLevel; `off` or unset logs nothing; any
/// other value logs nothing and says so on std::clog). Explicit by design: a Client never reads the
/// environment on its own. Checks nothing: a bad URL shows up in Client::configuration_error.
inline ClientOptions options_from_environment(ClientOptions defaults = {}) {
    if (std::string key = environment_variable("PERPLEXITY_API_KEY"); !key.empty()) {
        defaults.api_key = std::move(key);
    }
    if (std::string url = environment_variable("PERPLEXITY_BASE_URL"); !url.empty()) {
        defaults.base_url = std::move(url);
    }
    if (std::string log = environment_variable("PERPLEXITY_LOG"); !log.empty()) {
        if (const auto level = parse_log_level(log)) {
            defaults.on_event = event_logger(std::clog, *level);
        } else if (log != "off") {
            std::clog << "perplexity: PERPLEXITY_LOG=\"" << log
                      << "\" is not one of off, info, debug; logging stays off\n";
        }
    }
    return defaults;
}

}  // namespace perplexity
