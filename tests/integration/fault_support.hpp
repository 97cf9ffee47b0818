// What the fault matrices share: making this thread's I/O steps fail as a plan says, the realistic error
// of each step, and the walk over every step of a clean run's trace, each failed in turn.
#pragma once

#include "test_support.hpp"

#include <perplexity/detail/io_step.hpp>

#include <doctest/doctest.h>

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace test {

using IoStep = px::detail::IoStep;

/// Makes this thread's I/O steps fail as `plan` says, for the lifetime of the scope.
class FaultScope {
  public:
    explicit FaultScope(px::detail::IoFaultPlan& plan) { px::detail::active_io_fault_plan() = &plan; }
    ~FaultScope() { px::detail::active_io_fault_plan() = nullptr; }
    FaultScope(const FaultScope&) = delete;
    FaultScope& operator=(const FaultScope&) = delete;
};

/// What each step's failure looks like on a real network.
inline boost::system::error_code realistic_failure(IoStep step) {
    namespace error = boost::asio::error;
    namespace http = boost::beast::http;
    switch (step) {
        case IoStep::resolve:
            return error::host_not_found;
        case IoStep::connect:
            return error::connection_refused;
        case IoStep::tls_handshake:
            return error::connection_reset;
        case IoStep::write:
            return error::broken_pipe;
        case IoStep::read_header:
            return http::error::end_of_stream;
        case IoStep::read_body:
            return http::error::partial_message;
        case IoStep::shutdown:
            return error::not_connected;
    }
    return error::fault;
}

/// The kind of Error a failed step must give. A reset during the TLS handshake is a network failure,
/// not a TLS refusal, so it is transport (and retryable) like the others.
inline px::ErrorKind kind_for(const boost::system::error_code& injected) {
    return injected == boost::beast::error::timeout ? px::ErrorKind::timeout : px::ErrorKind::transport;
}

/// `attempts` tries per request, retried and polling at once, within a 20 s wait.
inline px::ClientOptions with_attempts(px::ClientOptions options, unsigned attempts) {
    using namespace std::chrono_literals;
    options.retry.max_attempts = attempts;
    options.retry.backoff.initial = 1ms;
    options.retry.backoff.max = 1ms;
    options.poll = {.backoff = {.initial = 1ms, .growth = 1.0, .max = 1ms, .jitter = 0}, .deadline = 20s};
    return options;
}

template <class T>
std::optional<px::Error> error_of(const px::expected<T, px::Error>& result) {
    if (result) {
        return std::nullopt;
    }
    return result.error();
}

/// One failure of the matrix: step number `n` (1-based) of the trace, `step`, fails with `error`, in a
/// client that makes `attempts` attempts per request.
struct InjectedFailure {
    std::size_t n;
    IoStep step;
    boost::system::error_code error;
    unsigned attempts;
};

/// Calls `check` for every failure of the matrix over `trace` (the steps of a clean run): each step fails
/// in turn, with its realistic error and with a timeout, with one attempt and with three. Counts the
/// failures per kind of step in `steps_failed`.
template <class Check>
void for_each_injected_failure(const std::vector<IoStep>& trace, std::map<IoStep, std::size_t>& steps_failed,
                               Check check) {
    for (std::size_t n = 1; n <= trace.size(); ++n) {
        const IoStep step = trace[n - 1];
        for (const auto& injected :
             {realistic_failure(step), boost::system::error_code(boost::beast::error::timeout)}) {
            for (const unsigned attempts : {1u, 3u}) {
                CAPTURE(n);
                const std::string step_name = px::detail::to_string(step);
                CAPTURE(step_name);
                const std::string injected_name = injected.message();
                CAPTURE(injected_name);
                CAPTURE(attempts);
                ++steps_failed[step];
                check(InjectedFailure{.n = n, .step = step, .error = injected, .attempts = attempts});
            }
        }
    }
}

/// Every kind of step was made to fail, in some operation.
inline void check_every_step_failed(const std::map<IoStep, std::size_t>& steps_failed) {
    for (const IoStep step : {IoStep::resolve, IoStep::connect, IoStep::tls_handshake, IoStep::write,
                              IoStep::read_header, IoStep::read_body, IoStep::shutdown}) {
        const std::string step_name = px::detail::to_string(step);
        CAPTURE(step_name);
        const auto found = steps_failed.find(step);
        CHECK((found != steps_failed.end() && found->second > 0));
    }
}

}  // namespace test
