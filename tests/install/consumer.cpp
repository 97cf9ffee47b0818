// A program built against an installed (or subproject) perplexity-async, the way a user would build it.
// It exercises the compiled-in parts a broken package would break (Asio and coroutines, OpenSSL through
// the Client's TLS context, Boost.JSON) without touching the network, and exits 0 only if each behaved.
#include <perplexity/async.hpp>

// The package passes the library's compile definition on to its users.
#ifndef BOOST_ASIO_NO_DEPRECATED
#error "BOOST_ASIO_NO_DEPRECATED is not defined: the package did not pass its compile definition"
#endif

// Built header-only, and again with separate compilation (EXPECT_SEPARATE_COMPILATION), whose definition
// must come from the package too.
#if defined(EXPECT_SEPARATE_COMPILATION) != defined(PERPLEXITY_ASYNC_SEPARATE_COMPILATION)
#error "the package did not give the mode expected: PERPLEXITY_ASYNC_SEPARATE_COMPILATION is (not) defined"
#endif

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace asio = boost::asio;
namespace px = perplexity;

namespace {

int failures = 0;

void check(bool condition, const char* what) {
    if (!condition) {
        std::cerr << "FAILED: " << what << '\n';
        ++failures;
    }
}

}  // namespace

int main() {
    std::cout << "perplexity-async " << px::version_string << '\n';

    asio::io_context io;
    px::Client client(io.get_executor(), px::ClientOptions{});
    const std::optional<px::Error>& configuration = client.configuration_error();
    check(configuration && configuration->kind == px::ErrorKind::invalid_argument,
          "a Client without an API key reports a configuration error");
    if (configuration) {
        std::cout << "configuration error: " << *configuration << '\n';
    }

    // An operation on a misconfigured Client ends with that error, without a connection.
    std::optional<px::expected<px::Job, px::Error>> got;
    asio::co_spawn(
        io, [&]() -> asio::awaitable<void> { got.emplace(co_await client.get("job-1")); }, asio::detached);
    io.run();
    check(got && !*got && got->error().kind == px::ErrorKind::invalid_argument,
          "get on a misconfigured Client returns the configuration error");
    check(client.open_connection_count() == 0, "no connection was opened");

    const auto job = px::parse_job(R"({"id": "job-1", "model": "sonar-deep-research", "status": "COMPLETED",
        "created_at": 1767225600, "completed_at": 1767225791,
        "response": {"id": "r-1", "model": "sonar-deep-research", "created": 1767225791,
                     "object": "chat.completion", "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "<think>x</think>About 100 billion."}}]}})");
    check(job && job->status == px::JobStatus::completed && job->response, "a completed Job decodes");
    if (job && job->response) {
        const std::string text = job->response->text();
        const std::string_view answer = px::split_thinking(text).answer;
        check(answer == "About 100 billion.", "the answer is the text after the <think> block");
        std::cout << "job " << job->id << ' ' << px::to_string(job->status) << ": " << answer << '\n';
    }

    const auto broken = px::parse_job(R"({"id": "job-2", "status": 7})");
    check(!broken && broken.error().kind == px::ErrorKind::decode && broken.error().job_id == "job-2",
          "a malformed Job is a decode error that keeps the job id");

    std::cout << (failures == 0 ? "ok" : "FAILED") << '\n';
    return failures == 0 ? 0 : 1;
}
