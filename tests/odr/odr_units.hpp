// The two units of the one-definition test, and what each of them does with the library. Each returns
// what went wrong, or nothing.
#pragma once

#include <perplexity/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <string>
#include <utility>

std::string odr_unit_a();
std::string odr_unit_b();

namespace {

// Internal to each unit that includes it, so that each unit makes its own calls into the library (and,
// header-only, emits its own copies of the library's inline functions): a Client's run, parse_job and
// make_idempotency_key.
[[maybe_unused]] std::string use_the_library(const std::string& unit) {
    boost::asio::io_context io;
    // No API key: the run fails at once with the configuration's Error, with no network involved.
    perplexity::ClientOptions options;
    options.api_key = "";
    perplexity::Client client(io.get_executor(), options);
    perplexity::ChatRequest request{.model = "sonar", .messages = {{.role = "user", .content = unit}}};
    auto result = boost::asio::co_spawn(io, client.run(std::move(request)), boost::asio::use_future);
    io.run();
    const auto job = result.get();
    if (job || job.error().kind != perplexity::ErrorKind::invalid_argument) {
        return unit + ": a Client without an API key did not fail with invalid_argument";
    }
    const std::string job_id = "job-" + unit;
    const auto parsed = perplexity::parse_job(R"({"id":")" + job_id +
                                              R"(","model":"sonar","created_at":1,"status":"CREATED"})");
    if (!parsed || parsed->id != job_id) {
        return unit + ": parse_job failed";
    }
    if (perplexity::make_idempotency_key().size() != 36) {
        return unit + ": make_idempotency_key did not make a UUID";
    }
    return "";
}

}  // namespace
