// The Client's members that reach its engine. Header-only, <perplexity/client.hpp> includes this file
// and the definitions are inline; with PERPLEXITY_ASYNC_SEPARATE_COMPILATION, <perplexity/src.hpp> does,
// in the one unit that compiles the library.
#pragma once

#include <perplexity/client.hpp>
#include <perplexity/detail/config.hpp>
#include <perplexity/detail/engine.hpp>

#include <memory>
#include <utility>

namespace perplexity {

PERPLEXITY_ASYNC_DECL Client::Client(executor_type executor, ClientOptions options, detail::ExpectedFlavour)
    : executor_(std::move(executor)),
      options_(std::move(options)),
      engine_(std::make_unique<detail::Engine>(executor_, options_)) {}

PERPLEXITY_ASYNC_DECL Client::~Client() = default;

PERPLEXITY_ASYNC_DECL const std::optional<Error>& Client::configuration_error() const noexcept {
    return engine_->configuration_error();
}

PERPLEXITY_ASYNC_DECL std::size_t Client::idle_connection_count() const noexcept {
    return engine_->pool().idle_count();
}

PERPLEXITY_ASYNC_DECL std::size_t Client::open_connection_count() const noexcept {
    return engine_->pool().open_count();
}

PERPLEXITY_ASYNC_DECL void Client::close_idle_connections() noexcept {
    engine_->pool().close_idle();
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Job, Error>> Client::create(
    ChatRequest request, std::optional<std::string> idempotency_key) {
    return engine_->create(std::move(request), std::move(idempotency_key));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Job, Error>> Client::get(std::string job_id) {
    return engine_->get<detail::SonarJobs>(std::move(job_id));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<JobPage, Error>> Client::list(
    std::optional<std::size_t> limit, std::optional<std::string> next_token) {
    return engine_->list(limit, std::move(next_token));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Job, Error>> Client::wait(std::string job_id,
                                                                                WaitOptions options) {
    return engine_->wait<detail::SonarJobs>(std::move(job_id), std::move(options));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Job, Error>> Client::wait(std::string job_id) {
    return engine_->wait<detail::SonarJobs>(std::move(job_id), WaitOptions{});
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Job, Error>> Client::run(ChatRequest request,
                                                                               WaitOptions options) {
    // On the heap, the request is freed once the create has been answered instead of staying in the
    // frame of the whole wait.
    return engine_->run(std::make_unique<ChatRequest>(std::move(request)), std::move(options));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Job, Error>> Client::run(ChatRequest request) {
    return engine_->run(std::make_unique<ChatRequest>(std::move(request)), WaitOptions{});
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Response, Error>> Client::create_response(
    ResponseRequest request) {
    return engine_->create_response(std::move(request));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Response, Error>> Client::get_response(
    std::string response_id) {
    return engine_->get<detail::AgentResponses>(std::move(response_id));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<CancelAcknowledgement, Error>> Client::cancel_response(
    std::string response_id) {
    return engine_->cancel_response(std::move(response_id));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Response, Error>> Client::wait_response(
    std::string response_id, ResponseWaitOptions options) {
    return engine_->wait<detail::AgentResponses>(std::move(response_id), std::move(options));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Response, Error>> Client::wait_response(
    std::string response_id) {
    return engine_->wait<detail::AgentResponses>(std::move(response_id), ResponseWaitOptions{});
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Response, Error>> Client::run_response(
    ResponseRequest request, ResponseWaitOptions options) {
    return engine_->run_response(std::make_unique<ResponseRequest>(std::move(request)), std::move(options));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<Response, Error>> Client::run_response(
    ResponseRequest request) {
    return engine_->run_response(std::make_unique<ResponseRequest>(std::move(request)),
                                 ResponseWaitOptions{});
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<ResumeReport, Error>> Client::resume(
    ResumeOptions options) {
    return engine_->resume(std::move(options));
}

PERPLEXITY_ASYNC_DECL boost::asio::awaitable<expected<ResumeReport, Error>> Client::resume() {
    return engine_->resume(ResumeOptions{});
}

}  // namespace perplexity
