// Sending one request and reading its answer over a pooled connection: the I/O under the request
// machine. Its one decision, whether a failed exchange on a reused connection goes once more on a fresh
// one, is the pure function `resend_on_fresh_connection`.
#pragma once

#include <perplexity/detail/configuration.hpp>
#include <perplexity/detail/connection.hpp>
#include <perplexity/detail/connection_pool.hpp>
#include <perplexity/detail/error_text.hpp>
#include <perplexity/detail/request.hpp>
#include <perplexity/detail/request_machine.hpp>
#include <perplexity/detail/response.hpp>
#include <perplexity/options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

namespace perplexity::detail {

/// Whether a request whose exchange failed with `failure` goes once more, on a fresh connection. A
/// reused connection that closes or resets before any byte of an answer is what a server that closed it
/// while idle looks like; but only a request that provably never left (the write failed) or is safe to
/// repeat may be assumed to have met that. Silence is not staleness: a timeout goes to the retry policy,
/// so that request_timeout bounds each attempt. Once only, so that a broken server cannot loop us.
inline bool resend_on_fresh_connection(const IoFailure& failure, bool reused, bool resend_safe,
                                       bool already_resent) {
    const bool never_processed = failure.step == IoStep::write;
    return !already_resent && reused && failure.nothing_received && (never_processed || resend_safe) &&
           failure.ec != boost::asio::error::operation_aborted && failure.ec != boost::beast::error::timeout;
}

/// What a failed exchange means for the request: the Error, and whether the server may have acted.
inline SendFailure exchange_failure(const IoFailure& failure, std::chrono::milliseconds budget,
                                    bool resend_safe, const ClientOptions& options, std::string_view peer) {
    // A write that failed delivered no complete request, so nothing can have acted on it.
    const bool may_have_arrived = failure.step != IoStep::write;
    Error error = describe(failure, budget, options, peer);
    if (may_have_arrived && !resend_safe) {
        note_may_have_acted(error);
    }
    return {std::move(error), may_have_arrived};
}

class Transport {
  public:
    Transport(boost::asio::any_io_executor executor, const ClientOptions& options)
        : options_(options),
          tls_(boost::asio::ssl::context::tls_client),
          pool_(std::move(executor), options.max_connections, options.idle_connection_timeout) {}

    boost::asio::ssl::context& tls_context() noexcept { return tls_; }
    ConnectionPool& pool() noexcept { return pool_; }
    const ConnectionPool& pool() const noexcept { return pool_; }

    /// Sends `request` to `origin` on a pooled or new connection, waiting (until `deadline`) for one when
    /// all are busy, and reads the answer within request_timeout or what the deadline leaves.
    boost::asio::awaitable<expected<HttpResponse, SendFailure>> send(const Origin& origin,
                                                                     const HttpRequest& request,
                                                                     bool resend_safe,
                                                                     Clock::time_point deadline) {
        std::optional<ConnectionPool::Lease> leased = pool_.try_acquire();
        if (!leased) {
            auto granted = co_await pool_.wait_for_lease(deadline);
            if (!granted) {
                co_return unexpected(SendFailure{
                    no_free_connection(granted.error() == ConnectionPool::AcquireFailure::cancelled,
                                       options_.max_connections),
                    false});
            }
            leased.emplace(std::move(*granted));
        }
        ConnectionPool::Lease& lease = *leased;
        // Waiting for a connection may have used up part of the time.
        const auto budget = time_left(deadline, Clock::now());
        const auto timeout = std::min(options_.request_timeout, budget);
        if (timeout <= std::chrono::milliseconds(0)) {
            co_return unexpected(SendFailure{deadline_passed_waiting_for_connection(), false});
        }
        for (bool resent = false;; resent = true) {
            if (!lease.connection()) {
                auto opened = co_await Connection::open(origin, &tls_,
                                                        {std::min(options_.connect_timeout, timeout),
                                                         std::min(options_.tls_handshake_timeout, timeout)});
                if (!opened) {
                    co_return unexpected(
                        SendFailure{describe(opened.error(), budget, options_, origin.host_header), false});
                }
                lease.fill(std::move(*opened));
            }
            auto response = co_await lease.connection()->exchange(
                request, {timeout, options_.max_response_header, options_.max_response_body});
            if (response) {
                lease.give_back(response->keep_alive() && lease.connection()->nothing_buffered());
                co_return std::move(*response);
            }
            if (resend_on_fresh_connection(response.error(), lease.reused(), resend_safe, resent)) {
                lease.discard();
                continue;
            }
            co_return unexpected(
                exchange_failure(response.error(), budget, resend_safe, options_, origin.host_header));
        }
    }

  private:
    const ClientOptions& options_;
    boost::asio::ssl::context tls_;
    ConnectionPool pool_;
};

}  // namespace perplexity::detail
