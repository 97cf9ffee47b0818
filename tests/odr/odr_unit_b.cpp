// The other of two units that use the same parts of the library (see odr_main.cpp): a Client's run, the JSON
// functions and make_idempotency_key.
#include "odr_units.hpp"

#include <perplexity/async.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <string>

std::string odr_unit_b() {
    boost::asio::io_context io;
    // No API key: the run fails at once with the configuration's Error, with no network involved.
    perplexity::ClientOptions options;
    options.api_key = "";
    perplexity::Client client(io.get_executor(), options);
    perplexity::ChatRequest request{.model = "sonar", .messages = {{.role = "user", .content = "b"}}};
    auto result = boost::asio::co_spawn(io, client.run(std::move(request)), boost::asio::use_future);
    io.run();
    const auto job = result.get();
    if (job || job.error().kind != perplexity::ErrorKind::invalid_argument) {
        return "b: a Client without an API key did not fail with invalid_argument";
    }
    const auto parsed =
        perplexity::parse_job(R"({"id":"job-b","model":"sonar","created_at":1,"status":"CREATED"})");
    if (!parsed || parsed->id != "job-b") {
        return "b: parse_job failed";
    }
    if (perplexity::make_idempotency_key().size() != 36) {
        return "b: make_idempotency_key did not make a UUID";
    }
    return "";
}
