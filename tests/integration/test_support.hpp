// What the socket tests share: running a coroutine to its end on a test's io_context, a simulator
// harness, and a scriptable loopback server for behaviour the simulator does not offer.
#pragma once

#include <perplexity/async.hpp>
#include <perplexity_sim/simulator.hpp>

#include <doctest/doctest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace px = perplexity;
namespace asio = boost::asio;

namespace test {

/// The API key of every socket test unless a test picks its own: distinctive, so that test::run can
/// check that no Error any operation returns anywhere in the suite contains it.
inline const std::string secret_key = "pplx-suite-SECRET-4f1d9c27b86e0a35";

/// Everything a user could print or log from an Error.
inline std::string everything_in(const px::Error& error) {
    std::string text = px::to_string(error) + "|" + error.message + "|" + error.api_type + "|" +
                       error.api_message + "|" + error.body_excerpt + "|" + error.json_path + "|" +
                       error.job_id.value_or("") + "|" + error.cause.message();
    if (error.job) {
        text += "|" + px::to_json_string(*error.job);
    }
    text += "|" + error.api_param;
    if (error.response) {
        text += "|" + px::to_json_string(*error.response);
    }
    return text;
}

template <class T>
void check_no_secret(const T&) {}

inline void check_no_secret_text(const std::string& text) {
    CHECK_MESSAGE(text.find(secret_key) == std::string::npos, text);
    // Not even a recognisable piece of it.
    CHECK_MESSAGE(text.find(secret_key.substr(secret_key.size() - 12)) == std::string::npos, text);
}

inline void check_no_secret(const std::optional<px::Error>& error) {
    if (error) {
        check_no_secret_text(everything_in(*error));
    }
}

/// Formats every event as the log line a user would see and checks it for the key, so that the sweep
/// covers log output too; every socket test's Client gets it.
inline px::EventHandler secret_checking_logger() {
    return [](const px::Event& event) { check_no_secret_text(px::format_event(event)); };
}

template <class T>
void check_no_secret(const px::expected<T, px::Error>& result) {
    if (!result) {
        check_no_secret(std::optional<px::Error>(result.error()));
    }
}

/// Runs `operation` on `io` until it finishes. The limit only guards against a hang turning into a stuck
/// test run; a test never depends on it.
template <class T>
T run(asio::io_context& io, asio::awaitable<T> operation,
      std::chrono::seconds limit = std::chrono::seconds(60)) {
    std::optional<T> result;
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { result.emplace(co_await std::move(operation)); },
        [&](std::exception_ptr error) {
            failure = error;
            done = true;
        });
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
        io.restart();
        io.run_one_for(std::chrono::milliseconds(100));
    }
    REQUIRE_MESSAGE(done, "the operation did not finish within " << limit.count() << " s");
    if (failure) {
        std::rethrow_exception(failure);
    }
    check_no_secret(*result);
    return std::move(*result);
}

/// The simulator on the test's io_context, and client options that trust it.
/// What a Client needs to reach `simulator`: its URL, its key, and its CA.
inline px::ClientOptions options_for(const perplexity_sim::Simulator& simulator) {
    px::ClientOptions options;
    options.base_url = simulator.base_url();
    options.api_key = simulator.options().api_key;
    options.ca_pem = simulator.ca_certificate_pem();
    return options;
}

/// Spawns `operation` with a cancellation slot, runs until `ready()`, cancels it (terminal), and returns
/// its result.
template <class T>
T cancel_when(asio::io_context& io, asio::awaitable<T> operation, const std::function<bool()>& ready) {
    using namespace std::chrono_literals;
    asio::cancellation_signal signal;
    std::optional<T> outcome;
    asio::co_spawn(io, std::move(operation),
                   asio::bind_cancellation_slot(signal.slot(), [&](std::exception_ptr error, T result) {
                       REQUIRE_FALSE(error);
                       outcome = std::move(result);
                   }));
    while (!ready() && !outcome) {
        REQUIRE(io.run_one_for(10s) > 0);
    }
    REQUIRE_FALSE(outcome);
    signal.emit(asio::cancellation_type::terminal);
    while (!outcome) {
        REQUIRE(io.run_one_for(10s) > 0);
    }
    return std::move(*outcome);
}

struct Harness {
    explicit Harness(perplexity_sim::SimulatorOptions options = {})
        : simulator(io.get_executor(), with_suite_key(std::move(options))) {
        simulator.start();
    }
    ~Harness() {
        simulator.stop();
        io.restart();
        io.poll();
    }

    px::ClientOptions client_options() const {
        px::ClientOptions options = options_for(simulator);
        options.on_event = secret_checking_logger();
        return options;
    }

    static perplexity_sim::SimulatorOptions with_suite_key(perplexity_sim::SimulatorOptions options) {
        if (options.api_key == perplexity_sim::SimulatorOptions{}.api_key) {
            options.api_key = secret_key;
        }
        return options;
    }

    template <class T>
    T run(asio::awaitable<T> operation) {
        return test::run(io, std::move(operation));
    }

    asio::io_context io;
    perplexity_sim::Simulator simulator;
};

/// A one-message deep-research request.
inline px::ChatRequest question(std::string text) {
    return px::ChatRequest{.model = "sonar-deep-research",
                           .messages = {{.role = "user", .content = std::move(text)}}};
}

inline std::uint16_t unused_port(asio::io_context& io) {
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::address_v4::loopback(), 0});
    return acceptor.local_endpoint().port();
}

/// A plain TCP server on 127.0.0.1. Connections accepted while it is not answering swallow whatever
/// the client sends and never reply (holding the connection open); once `set_answering(true)`, new
/// connections get an HTTP answer to each request: a CREATED job whose id is the request's last path
/// segment.
class LoopbackServer {
  public:
    explicit LoopbackServer(asio::io_context& io) : state_(std::make_shared<State>(io.get_executor())) {
        state_->acceptor.open(asio::ip::tcp::v4());
        state_->acceptor.bind({asio::ip::address_v4::loopback(), 0});
        state_->acceptor.listen();
        asio::co_spawn(io, accept_loop(state_), asio::detached);
    }
    ~LoopbackServer() {
        boost::system::error_code ignored;
        state_->acceptor.close(ignored);
        for (auto& weak : state_->sockets) {
            if (auto socket = weak.lock()) {
                socket->close();
            }
        }
    }

    std::string base_url() const {
        return "http://127.0.0.1:" + std::to_string(state_->acceptor.local_endpoint().port());
    }
    std::size_t accepted() const { return state_->accepted; }

    void set_answering(bool answering) { state_->answer = answering; }

  private:
    struct State {
        explicit State(asio::any_io_executor executor) : acceptor(executor) {}
        asio::ip::tcp::acceptor acceptor;
        std::vector<std::weak_ptr<boost::beast::tcp_stream>> sockets;
        std::size_t accepted = 0;
        bool answer = false;
    };

    static asio::awaitable<void> accept_loop(std::shared_ptr<State> state) {
        for (;;) {
            auto [ec, socket] = co_await state->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;
            }
            ++state->accepted;
            auto stream = std::make_shared<boost::beast::tcp_stream>(std::move(socket));
            state->sockets.push_back(stream);
            asio::co_spawn(state->acceptor.get_executor(), serve(state, stream), asio::detached);
        }
    }

    static asio::awaitable<void> serve(std::shared_ptr<State> state,
                                       std::shared_ptr<boost::beast::tcp_stream> stream) {
        namespace http = boost::beast::http;
        if (!state->answer) {
            // Swallow whatever arrives, HTTP or not (a TLS ClientHello), and never answer, until the
            // client closes the connection.
            char sink[512];
            for (;;) {
                auto [ec, n] =
                    co_await stream->async_read_some(asio::buffer(sink), asio::as_tuple(asio::use_awaitable));
                if (ec) {
                    co_return;
                }
            }
        }
        boost::beast::flat_buffer buffer;
        for (;;) {
            http::request<http::string_body> request;
            auto [ec, n] =
                co_await http::async_read(*stream, buffer, request, asio::as_tuple(asio::use_awaitable));
            if (ec) {
                co_return;
            }
            const std::string target(request.target());
            const std::string id = target.substr(target.rfind('/') + 1);
            http::response<http::string_body> response{http::status::ok, 11};
            response.set(http::field::content_type, "application/json");
            response.body() = R"({"id":")" + id + R"(","model":"m","created_at":1,"status":"CREATED"})";
            response.prepare_payload();
            auto [write_ec, written] =
                co_await http::async_write(*stream, response, asio::as_tuple(asio::use_awaitable));
            if (write_ec) {
                co_return;
            }
        }
    }

    std::shared_ptr<State> state_;
};

}  // namespace test
