// Model, JSON mapping, errors, URLs and expected: everything that needs no socket.
#include <perplexity/async.hpp>

#include <doctest/doctest.h>

#include <boost/asio/error.hpp>
#include <boost/json/parse.hpp>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

namespace px = perplexity;
namespace json = boost::json;

namespace {

std::string read_sample(const std::string& name) {
    std::ifstream file(std::string(PERPLEXITY_TEST_DATA_DIR) + "/" + name, std::ios::binary);
    REQUIRE_MESSAGE(file.good(), "missing sample " << name);
    std::ostringstream content;
    content << file.rdbuf();
    return content.str();
}

px::Error decode_error_of(std::string_view body) {
    auto job = px::parse_job(body);
    REQUIRE_FALSE(job.has_value());
    CHECK(job.error().kind == px::ErrorKind::decode);
    return job.error();
}

/// Decodes a body as T the way the client does (parsed in an arena, then decoded).
template <class T>
T decode_as(const std::string& body) {
    auto decoded = px::detail::parse_body<T>(body, "test");
    REQUIRE_MESSAGE(decoded.has_value(), px::to_string(decoded.error()));
    return std::move(*decoded);
}

/// `value` and `text` are the same thing in C++ and in JSON: encoding the one writes the other, decoding
/// the other reads the one, and decoding what was encoded gives the decoded value again.
template <class T>
void check_same_in_both(const T& value, std::string_view text) {
    CAPTURE(text);
    CHECK(json::value_from(value) == json::parse(text));
    const T decoded = decode_as<T>(std::string(text));
    CHECK(decoded == value);
    CHECK(decode_as<T>(px::to_json_string(decoded)) == decoded);
}

/// A text meant to have every optional member set has each member of T's table, none of them null; so a
/// member added to a table without a test here fails.
template <class T>
void check_names_every_field(std::string_view text) {
    const json::object object = json::parse(text).as_object();
    const auto check_one = [&](const auto& field) {
        const json::value* member = object.if_contains(field.name);
        CHECK_MESSAGE((member != nullptr && !member->is_null()), "not set: " << std::string(field.name));
    };
    px::detail::for_each_field(px::detail::JsonFields<T>::fields, check_one);
}

/// Read off T's table: in the encoding of a value with every optional member empty, such a member is
/// left out, or null where its entry says WhenAbsent::null. (A plain member that is optional to decode,
/// like Choice::index, is never empty and always written.)
template <class T>
void check_absent_members_left_out(const T& value) {
    const json::value encoded = json::value_from(value);
    const json::object& object = encoded.as_object();
    const auto check_one = [&](const auto& field) {
        if (field.presence != px::detail::Presence::optional || !field.absent_in(value)) {
            return;
        }
        CAPTURE(std::string(field.name));
        if (field.when_absent == px::detail::WhenAbsent::null) {
            const json::value* member = object.if_contains(field.name);
            CHECK((member != nullptr && member->is_null()));
        } else {
            CHECK_FALSE(object.contains(field.name));
        }
    };
    px::detail::for_each_field(px::detail::JsonFields<T>::fields, check_one);
}

// Every model type with every optional member set, and with none, in C++ and in JSON. Numbers are exact
// in binary and all different, so a value read into the wrong member shows.

constexpr std::string_view full_part_json =
    R"({"type":"image_url","text":"a chart","image_url":{"url":"https://example.org/a.png"}})";
px::ContentPart full_part() {
    return {.type = "image_url", .text = "a chart", .image_url = "https://example.org/a.png"};
}

const std::string full_message_json =
    std::string(R"({"role":"assistant","content":[)") + std::string(full_part_json) +
    R"(],"reasoning_steps":[{"thought":"look it up"}],"tool_calls":[{"id":"call-1","type":"function"}],)"
    R"("tool_call_id":"call-0"})";
px::Message full_message() {
    return {.role = "assistant",
            .content = std::vector<px::ContentPart>{full_part()},
            .reasoning_steps = json::parse(R"([{"thought":"look it up"}])"),
            .tool_calls = json::parse(R"([{"id":"call-1","type":"function"}])"),
            .tool_call_id = "call-0"};
}

constexpr std::string_view full_search_result_json =
    R"({"title":"Milky Way","url":"https://example.org/milky-way","date":"2025-03-01",)"
    R"("last_updated":"2025-06-10","snippet":"The Milky Way contains...","source":"web"})";
px::SearchResult full_search_result() {
    return {.title = "Milky Way",
            .url = "https://example.org/milky-way",
            .date = "2025-03-01",
            .last_updated = "2025-06-10",
            .snippet = "The Milky Way contains...",
            .source = "web"};
}

constexpr std::string_view full_cost_json =
    R"({"input_tokens_cost":0.5,"output_tokens_cost":0.25,"total_cost":4.5,"citation_tokens_cost":0.125,)"
    R"("reasoning_tokens_cost":0.0625,"request_cost":1.5,"search_queries_cost":2.5})";
px::Cost full_cost() {
    return {.input_tokens_cost = 0.5,
            .output_tokens_cost = 0.25,
            .total_cost = 4.5,
            .citation_tokens_cost = 0.125,
            .reasoning_tokens_cost = 0.0625,
            .request_cost = 1.5,
            .search_queries_cost = 2.5};
}

const std::string full_usage_json =
    R"({"prompt_tokens":21,"completion_tokens":812,"total_tokens":833,"citation_tokens":9120,)"
    R"("num_search_queries":14,"reasoning_tokens":30211,"search_context_size":"low","cost":)" +
    std::string(full_cost_json) + "}";
px::Usage full_usage() {
    return {.prompt_tokens = 21,
            .completion_tokens = 812,
            .total_tokens = 833,
            .citation_tokens = 9120,
            .num_search_queries = 14,
            .reasoning_tokens = 30211,
            .search_context_size = "low",
            .cost = full_cost()};
}

const std::string full_choice_json = R"({"index":1,"finish_reason":"stop","message":)" + full_message_json +
                                     R"(,"delta":{"role":"assistant","content":"Hel"}})";
px::Choice full_choice() {
    return {.index = 1,
            .finish_reason = "stop",
            .message = full_message(),
            .delta = px::Message{.role = "assistant", .content = "Hel"}};
}

// With a member no table names, which the completion keeps in `raw`.
const std::string full_completion_json =
    R"({"id":"c-1","model":"sonar","created":1767225791,"object":"chat.completion","choices":[)" +
    full_choice_json + R"(],"citations":["https://example.org/milky-way"],"search_results":[)" +
    std::string(full_search_result_json) +
    R"(],"images":[{"image_url":"https://example.org/i.png"}],"related_questions":["Why?"],"usage":)" +
    full_usage_json + R"(,"brand_new_member":{"nested":7}})";
px::ChatCompletion full_completion() {
    return {.id = "c-1",
            .model = "sonar",
            .created = 1767225791,
            .object = "chat.completion",
            .choices = {full_choice()},
            .citations = {"https://example.org/milky-way"},
            .search_results = {full_search_result()},
            .images = json::parse(R"([{"image_url":"https://example.org/i.png"}])"),
            .related_questions = {"Why?"},
            .usage = full_usage(),
            .raw = json::parse(full_completion_json).as_object()};
}

constexpr std::string_view empty_completion_json =
    R"({"id":"c-1","model":"sonar","created":1767225791,"choices":[]})";
px::ChatCompletion empty_completion() {
    return {.id = "c-1",
            .model = "sonar",
            .created = 1767225791,
            .raw = json::parse(empty_completion_json).as_object()};
}

constexpr std::string_view full_summary_json =
    R"({"id":"job-1","status":"COMPLETED","model":"sonar","created_at":1767225600,"started_at":1767225602,)"
    R"("completed_at":1767225791,"failed_at":1767225800})";
px::JobSummary full_summary() {
    return {.id = "job-1",
            .model = "sonar",
            .status = px::JobStatus::completed,
            .status_text = "COMPLETED",
            .created_at = 1767225600,
            .started_at = 1767225602,
            .completed_at = 1767225791,
            .failed_at = 1767225800};
}

// The job's lifecycle members are written as null when empty, as the API writes them.
constexpr std::string_view empty_summary_json =
    R"({"id":"job-1","status":"CREATED","model":"sonar","created_at":1767225600,"started_at":null,)"
    R"("completed_at":null,"failed_at":null})";
px::JobSummary empty_summary() {
    return {.id = "job-1",
            .model = "sonar",
            .status = px::JobStatus::created,
            .status_text = "CREATED",
            .created_at = 1767225600};
}

px::Job job_of(const px::JobSummary& summary) {
    px::Job job;
    static_cast<px::JobSummary&>(job) = summary;
    return job;
}

constexpr std::string_view full_request_json =
    R"({"model":"sonar","messages":[{"role":"user","content":"hi"}],"max_tokens":400,"temperature":0.5,)"
    R"("top_p":0.25,"top_k":3,"presence_penalty":0.125,"frequency_penalty":0.0625,"search_mode":"academic",)"
    R"("search_domain_filter":["nasa.gov"],"search_recency_filter":"week","search_after_date_filter":"3/1/2025",)"
    R"("search_before_date_filter":"6/1/2025","return_images":true,"return_related_questions":false,)"
    R"("reasoning_effort":"high","response_format":{"type":"text"},)"
    R"("web_search_options":{"search_context_size":"high"},"disable_search":false,"brand_new_param":42})";
px::ChatRequest full_request() {
    px::ChatRequest request{.model = "sonar",
                            .messages = {{.role = "user", .content = "hi"}},
                            .max_tokens = 400,
                            .temperature = 0.5,
                            .top_p = 0.25,
                            .top_k = 3,
                            .presence_penalty = 0.125,
                            .frequency_penalty = 0.0625,
                            .search_mode = px::SearchMode::academic,
                            .search_domain_filter = std::vector<std::string>{"nasa.gov"},
                            .search_recency_filter = "week",
                            .search_after_date_filter = "3/1/2025",
                            .search_before_date_filter = "6/1/2025",
                            .return_images = true,
                            .return_related_questions = false,
                            .reasoning_effort = px::ReasoningEffort::high,
                            .response_format = json::object{{"type", "text"}},
                            .web_search_options = json::object{{"search_context_size", "high"}},
                            .disable_search = false};
    request.extra_params["brand_new_param"] = 42;
    return request;
}

}  // namespace

TEST_SUITE("samples") {
    TEST_CASE("a created job") {
        auto job = px::parse_job(read_sample("job_created.json"));
        REQUIRE(job.has_value());
        CHECK(job->id == "0b6f3c1e-2a8d-4f1b-9c7e-5d4a3b2c1d0e");
        CHECK(job->model == "sonar-deep-research");
        CHECK(job->created_at == 1767225600);
        CHECK(job->status == px::JobStatus::created);
        CHECK(job->status_text == "CREATED");
        CHECK_FALSE(job->started_at);
        CHECK_FALSE(job->completed_at);
        CHECK_FALSE(job->failed_at);
        CHECK_FALSE(job->error_message);
        CHECK_FALSE(job->response);
        CHECK_FALSE(job->is_final());
    }

    TEST_CASE("a job in progress") {
        auto job = px::parse_job(read_sample("job_in_progress.json"));
        REQUIRE(job.has_value());
        CHECK(job->status == px::JobStatus::in_progress);
        CHECK(job->started_at == 1767225602);
        CHECK_FALSE(job->response);
    }

    TEST_CASE("a completed job with its whole answer") {
        auto job = px::parse_job(read_sample("job_completed.json"));
        REQUIRE(job.has_value());
        CHECK(job->status == px::JobStatus::completed);
        CHECK(job->is_final());
        CHECK(job->completed_at == 1767225791);
        REQUIRE(job->response);
        const px::ChatCompletion& answer = *job->response;
        CHECK(answer.id == "3c90c3cc-0d44-4b50-8888-8dd25736052a");
        CHECK(answer.created == 1767225791);
        CHECK(answer.object == "chat.completion");
        REQUIRE(answer.choices.size() == 1);
        CHECK(answer.choices[0].finish_reason == "stop");
        CHECK(answer.choices[0].message.role == "assistant");
        REQUIRE(answer.choices[0].delta);
        CHECK(answer.choices[0].delta->text().empty());

        const std::string text = answer.text();
        const auto [thinking, rest] = px::split_thinking(text);
        CHECK(thinking == "...");
        CHECK(rest == "Estimates range from 100 to 400 billion stars [1][2].");

        CHECK(answer.citations ==
              std::vector<std::string>{"https://example.org/milky-way", "https://example.com/star-count"});
        REQUIRE(answer.search_results.size() == 2);
        CHECK(answer.search_results[0].title == "Milky Way");
        CHECK(answer.search_results[0].date == "2025-03-01");
        CHECK(answer.search_results[0].source == "web");
        CHECK_FALSE(answer.search_results[1].date);
        CHECK_FALSE(answer.search_results[1].last_updated);
        CHECK(answer.search_results[1].snippet == "");

        REQUIRE(answer.usage);
        CHECK(answer.usage->prompt_tokens == 21);
        CHECK(answer.usage->completion_tokens == 812);
        CHECK(answer.usage->total_tokens == 833);
        CHECK(answer.usage->citation_tokens == 9120);
        CHECK(answer.usage->num_search_queries == 14);
        CHECK(answer.usage->reasoning_tokens == 30211);
        CHECK(answer.usage->search_context_size == "low");
        REQUIRE(answer.usage->cost);
        CHECK(answer.usage->cost->total_cost == doctest::Approx(0.18541));
        CHECK(answer.usage->cost->input_tokens_cost == doctest::Approx(0.00004));
        CHECK(answer.usage->cost->reasoning_tokens_cost == doctest::Approx(0.09063));
        CHECK_FALSE(answer.usage->cost->request_cost);

        // The raw completion keeps everything, modelled or not.
        CHECK(answer.raw.at("object") == "chat.completion");
        CHECK(answer.raw.at("usage").at("cost").at("search_queries_cost").as_double() ==
              doctest::Approx(0.07));
    }

    TEST_CASE("a failed job") {
        auto job = px::parse_job(read_sample("job_failed.json"));
        REQUIRE(job.has_value());
        CHECK(job->status == px::JobStatus::failed);
        CHECK(job->is_final());
        CHECK(job->failed_at == 1767225650);
        CHECK(job->error_message == "Internal error while processing request");
        CHECK_FALSE(job->response);
    }

    TEST_CASE("a page of the job list") {
        auto page = px::parse_job_page(read_sample("list_response.json"));
        REQUIRE(page.has_value());
        REQUIRE(page->jobs.size() == 2);
        CHECK(page->jobs[0].id == "0b6f3c1e-2a8d-4f1b-9c7e-5d4a3b2c1d0e");
        CHECK(page->jobs[0].status == px::JobStatus::completed);
        CHECK(page->jobs[1].status == px::JobStatus::failed);
        CHECK(page->jobs[1].failed_at == 1767225650);
        CHECK(page->next_token == "eyJvZmZzZXQiOjJ9");
    }

    TEST_CASE("the create request body") {
        px::ChatRequest request{
            .model = "sonar-deep-research",
            .messages = {{.role = "system", .content = "Be precise and concise."},
                         {.role = "user", .content = "How many stars are in the Milky Way?"}},
            .max_tokens = 4000,
            .reasoning_effort = px::ReasoningEffort::medium};
        const json::object body = px::create_request_body(request, "7f0c1e8a-3d4b-4c6e-9a51-2b7d8e0f1a22");
        CHECK(json::value(body) == json::parse(read_sample("create_request.json")));
        // The text the Client sends (from the request's JSON, which a ledger keeps) is the same body.
        const std::string request_text = json::serialize(json::value_from(request));
        CHECK(px::detail::create_body_from_text(request_text, "7f0c1e8a-3d4b-4c6e-9a51-2b7d8e0f1a22") ==
              json::serialize(body));
        CHECK(px::detail::create_body_from_text(request_text, std::nullopt) ==
              json::serialize(px::create_request_body(request)));
    }

    TEST_CASE("error bodies in the envelope shape") {
        px::Error error;
        px::detail::read_error_body(read_sample("error_400.json"), error);
        CHECK(error.api_type == "bad_request");
        CHECK(error.api_message == "[\"At body -> max_tokens: Input should be greater than 0\"]");
        CHECK(error.body_excerpt.empty());

        px::Error unauthorized;
        px::detail::read_error_body(read_sample("error_401.json"), unauthorized);
        CHECK(unauthorized.api_type == "authentication_error");
        CHECK(unauthorized.api_message == "Invalid API key");
    }

    TEST_CASE("error bodies in the FastAPI validation shape") {
        px::Error error;
        px::detail::read_error_body(read_sample("error_422_fastapi.json"), error);
        CHECK(error.api_type == "validation_error");
        CHECK(error.api_message == "body.request.messages: Field required (missing)");
    }
}

TEST_SUITE("round trips") {
    TEST_CASE("every job sample survives encode then decode") {
        for (const char* name :
             {"job_created.json", "job_in_progress.json", "job_completed.json", "job_failed.json"}) {
            CAPTURE(name);
            auto original = px::parse_job(read_sample(name));
            REQUIRE(original.has_value());
            auto again = px::parse_job(px::to_json_string(*original));
            REQUIRE(again.has_value());
            // The JSON written is what the API sent, member for member, but for the empty members of an
            // answer that the API writes as null: the library leaves those out, as it does every empty
            // member its table does not mark null. So the answer read back differs from the first in
            // its raw object alone, by those members.
            json::value written = json::parse(read_sample(name));
            if (original->response) {
                json::object& answer = written.at("response").as_object();
                CHECK(answer.at("search_results").at(1).as_object().erase("date") == 1);
                CHECK(answer.at("search_results").at(1).as_object().erase("last_updated") == 1);
                CHECK(answer.at("usage").at("cost").as_object().erase("request_cost") == 1);
            } else {
                CHECK(*again == *original);
            }
            CHECK(json::value_from(*original) == written);
            CHECK(*again == *px::parse_job(json::serialize(written)));
        }
    }

    TEST_CASE("a list page survives encode then decode") {
        auto original = px::parse_job_page(read_sample("list_response.json"));
        REQUIRE(original.has_value());
        auto again = px::parse_job_page(px::to_json_string(*original));
        REQUIRE(again.has_value());
        CHECK(*again == *original);
    }

    TEST_CASE("unknown completion members survive a round trip") {
        json::value body = json::parse(read_sample("job_completed.json"));
        body.at("response").as_object()["brand_new_field"] = json::object{{"nested", 7}};
        auto job = px::parse_job(json::serialize(body));
        REQUIRE(job.has_value());
        CHECK(job->response->raw.at("brand_new_field").at("nested") == 7);
        CHECK(json::value_from(*job).at("response").at("brand_new_field").at("nested") == 7);
    }

    TEST_CASE("JSON kept from a body outlives the parse") {
        // Bodies are parsed in an arena; whatever JSON a Job keeps must have been copied into the default
        // resource, or hold a reference-counted arena, or it would point into freed memory once parsing
        // returns.
        json::value body = json::parse(read_sample("job_completed.json"));
        json::object& message = body.at("response").at("choices").at(0).at("message").as_object();
        message["tool_calls"] = json::array{json::object{{"id", "call-1"}, {"type", "function"}}};
        message["reasoning_steps"] = json::array{"look it up", "answer"};
        body.at("response").as_object()["images"] =
            json::array{json::object{{"image_url", "https://a/b.png"}}};
        auto job = px::parse_job(json::serialize(body));
        REQUIRE(job.has_value());
        const json::storage_ptr default_resource;
        const px::ChatCompletion& answer = *job->response;
        // raw may keep the arena itself alive instead (see the next case), but never the stack's.
        CHECK((answer.raw.storage().get() == default_resource.get() || answer.raw.storage().is_shared()));
        REQUIRE(answer.images);
        CHECK(answer.images->storage().get() == default_resource.get());
        CHECK(answer.images->at(0).at("image_url") == "https://a/b.png");
        const px::Message& kept = answer.choices.at(0).message;
        REQUIRE(kept.tool_calls);
        CHECK(kept.tool_calls->storage().get() == default_resource.get());
        CHECK(kept.tool_calls->at(0).at("id") == "call-1");
        REQUIRE(kept.reasoning_steps);
        CHECK(kept.reasoning_steps->storage().get() == default_resource.get());
        CHECK(kept.reasoning_steps->at(1) == "answer");
    }

    TEST_CASE("a large answer keeps its parse arena alive instead of copying out of it") {
        // A completed job's body is parsed into a reference-counted arena that its raw object keeps;
        // everything else the Job keeps is still copied into the default resource.
        json::value body = json::parse(read_sample("job_completed.json"));
        json::object& message = body.at("response").at("choices").at(0).at("message").as_object();
        message["content"] = std::string(4000, 'x');
        message["tool_calls"] = json::array{json::object{{"id", "call-1"}}};
        const std::string text = json::serialize(body);
        REQUIRE(text.size() > 1024);
        auto job = px::parse_job(text);
        REQUIRE(job.has_value());
        const px::ChatCompletion& answer = *job->response;
        CHECK(answer.raw.storage().is_shared());
        CHECK(answer.raw.storage().get() != json::storage_ptr().get());
        CHECK(answer.raw.at("choices").at(0).at("message").at("content").as_string().size() == 4000);
        REQUIRE(answer.choices.at(0).message.tool_calls);
        CHECK(answer.choices.at(0).message.tool_calls->storage().get() == json::storage_ptr().get());
        // A copy shares the arena, and outlives the original.
        std::optional<px::ChatCompletion> copy(answer);
        job = px::parse_job("{}");
        CHECK(copy->raw.at("id") == body.at("response").at("id"));
        CHECK(copy->text() == std::string(4000, 'x'));
    }

    TEST_CASE("typed members win over raw on encode") {
        auto job = px::parse_job(read_sample("job_completed.json"));
        REQUIRE(job.has_value());
        px::ChatCompletion edited = *job->response;  // answers are shared and immutable: edit a copy
        edited.choices[0].message.content = std::string("edited");
        job->response = std::make_shared<const px::ChatCompletion>(std::move(edited));
        auto again = px::parse_job(px::to_json_string(*job));
        REQUIRE(again.has_value());
        CHECK(again->response->text() == "edited");
    }

    TEST_CASE("request parameters: typed, optional and extra") {
        px::ChatRequest request{
            .model = "sonar",
            .messages = {{.role = "user",
                          .content =
                              std::vector<px::ContentPart>{
                                  {.type = "text", .text = "Describe this"},
                                  {.type = "image_url", .image_url = "https://example.org/a.png"}}}},
            .temperature = 0.2,
            .search_mode = px::SearchMode::academic,
            .search_domain_filter = std::vector<std::string>{"nasa.gov"},
            .return_images = false,
            .web_search_options = json::object{{"search_context_size", "high"}}};
        request.extra_params["brand_new_param"] = 42;
        request.extra_params["temperature"] = 0.9;  // extra wins over typed

        const json::value sent = json::value_from(request);
        CHECK(sent.at("model") == "sonar");
        CHECK(sent.at("temperature").as_double() == doctest::Approx(0.9));
        CHECK(sent.at("search_mode") == "academic");
        CHECK(sent.at("search_domain_filter") == json::array{"nasa.gov"});
        CHECK(sent.at("return_images") == false);
        CHECK(sent.at("web_search_options").at("search_context_size") == "high");
        CHECK(sent.at("brand_new_param") == 42);
        CHECK_FALSE(sent.as_object().contains("max_tokens"));
        CHECK_FALSE(sent.as_object().contains("reasoning_effort"));
        const json::value& content = sent.at("messages").at(0).at("content");
        CHECK(content.at(0).at("text") == "Describe this");
        CHECK(content.at(1).at("image_url").at("url") == "https://example.org/a.png");
    }
}

TEST_SUITE("field tables") {
    TEST_CASE("ContentPart") {
        check_names_every_field<px::ContentPart>(full_part_json);
        check_same_in_both(full_part(), full_part_json);
        check_same_in_both(px::ContentPart{}, R"({"type":"text"})");
        check_absent_members_left_out(px::ContentPart{});
        // The bare-string form of image_url is read too, and written in the API's {"url": ...} shape.
        CHECK(decode_as<px::ContentPart>(
                  R"({"type":"image_url","text":"a chart","image_url":"https://example.org/a.png"})") ==
              full_part());
        CHECK(decode_as<px::ContentPart>(R"({"type":"text","text":null,"image_url":null})") ==
              px::ContentPart{});
    }

    TEST_CASE("Message") {
        check_names_every_field<px::Message>(full_message_json);
        check_same_in_both(full_message(), full_message_json);
        check_same_in_both(px::Message{.role = "user", .content = "hi"}, R"({"role":"user","content":"hi"})");
        // Content is the exception to "absent is left out": the API's message requires the member.
        const px::Message empty{.role = "user"};
        check_same_in_both(empty, R"({"role":"user","content":null})");
        check_absent_members_left_out(empty);
        CHECK(decode_as<px::Message>(R"({"role":"user"})") == empty);
    }

    TEST_CASE("SearchResult") {
        check_names_every_field<px::SearchResult>(full_search_result_json);
        check_same_in_both(full_search_result(), full_search_result_json);
        const px::SearchResult empty{.title = "Milky Way", .url = "https://example.org/milky-way"};
        check_same_in_both(empty, R"({"title":"Milky Way","url":"https://example.org/milky-way"})");
        check_absent_members_left_out(empty);
    }

    TEST_CASE("Cost") {
        check_names_every_field<px::Cost>(full_cost_json);
        check_same_in_both(full_cost(), full_cost_json);
        // request_cost included: it was once written as null when absent, unlike its siblings.
        const px::Cost empty{.input_tokens_cost = 0.5, .output_tokens_cost = 0.25, .total_cost = 0.75};
        check_same_in_both(empty, R"({"input_tokens_cost":0.5,"output_tokens_cost":0.25,"total_cost":0.75})");
        check_absent_members_left_out(empty);
        CHECK(decode_as<px::Cost>(R"({"input_tokens_cost":0.5,"output_tokens_cost":0.25,"total_cost":0.75,)"
                                  R"("request_cost":null,"citation_tokens_cost":null})") == empty);
    }

    TEST_CASE("Usage") {
        check_names_every_field<px::Usage>(full_usage_json);
        check_same_in_both(full_usage(), full_usage_json);
        const px::Usage empty{.prompt_tokens = 21, .completion_tokens = 812, .total_tokens = 833};
        check_same_in_both(empty, R"({"prompt_tokens":21,"completion_tokens":812,"total_tokens":833})");
        check_absent_members_left_out(empty);
    }

    TEST_CASE("Choice") {
        check_names_every_field<px::Choice>(full_choice_json);
        check_same_in_both(full_choice(), full_choice_json);
        // index may be missing (it reads as 0) but is a plain number, so it is always written.
        const px::Choice empty{.message = {.role = "assistant", .content = "Hello"}};
        check_same_in_both(empty, R"({"index":0,"message":{"role":"assistant","content":"Hello"}})");
        check_absent_members_left_out(empty);
        CHECK(decode_as<px::Choice>(R"({"message":{"role":"assistant","content":"Hello"}})") == empty);
    }

    TEST_CASE("ChatCompletion") {
        check_names_every_field<px::ChatCompletion>(full_completion_json);
        check_same_in_both(full_completion(), full_completion_json);
        check_same_in_both(empty_completion(), empty_completion_json);
        check_absent_members_left_out(empty_completion());
        check_absent_members_left_out(px::ChatCompletion{});
    }

    TEST_CASE("a completion's empty typed members are left out even where raw has them") {
        auto completion = decode_as<px::ChatCompletion>(
            R"({"id":"c-1","model":"sonar","created":1767225791,"object":"chat.completion","choices":[],)"
            R"("citations":[],"images":null,"usage":null,"brand_new_member":1})");
        completion.object.reset();
        CHECK(json::value_from(completion) ==
              json::parse(
                  R"({"id":"c-1","model":"sonar","created":1767225791,"choices":[],"brand_new_member":1})"));
        check_absent_members_left_out(completion);
    }

    TEST_CASE("JobSummary") {
        check_names_every_field<px::JobSummary>(full_summary_json);
        check_same_in_both(full_summary(), full_summary_json);
        check_same_in_both(empty_summary(), empty_summary_json);
        check_absent_members_left_out(empty_summary());
        CHECK(decode_as<px::JobSummary>(
                  R"({"id":"job-1","status":"CREATED","model":"sonar","created_at":1767225600})") ==
              empty_summary());
        // A summary built in code, with no status text, writes its status's name.
        px::JobSummary built = empty_summary();
        built.status_text.clear();
        built.status = px::JobStatus::in_progress;
        CHECK(json::value_from(built).at("status") == "IN_PROGRESS");
    }

    TEST_CASE("Job") {
        px::Job full = job_of(full_summary());
        full.error_message = "none, really";
        full.response = std::make_shared<const px::ChatCompletion>(full_completion());
        std::string full_json(full_summary_json);
        full_json.pop_back();
        full_json += R"(,"error_message":"none, really","response":)" + full_completion_json + "}";
        check_names_every_field<px::Job>(full_json);
        check_same_in_both(full, full_json);

        const px::Job empty = job_of(empty_summary());
        std::string empty_json(empty_summary_json);
        empty_json.pop_back();
        empty_json += R"(,"error_message":null,"response":null})";
        check_same_in_both(empty, empty_json);
        check_absent_members_left_out(empty);
    }

    TEST_CASE("JobPage") {
        const std::string full_json =
            R"({"requests":[)" + std::string(full_summary_json) + R"(],"next_token":"eyJvZmZzZXQiOjJ9"})";
        check_names_every_field<px::JobPage>(full_json);
        check_same_in_both(px::JobPage{.jobs = {full_summary()}, .next_token = "eyJvZmZzZXQiOjJ9"},
                           full_json);
        check_same_in_both(px::JobPage{}, R"({"requests":[]})");
        check_absent_members_left_out(px::JobPage{});
        // An empty token is the API's way of saying there is no next page.
        CHECK(decode_as<px::JobPage>(R"({"requests":[],"next_token":""})") == px::JobPage{});
    }

    TEST_CASE("ChatRequest") {
        check_names_every_field<px::ChatRequest>(full_request_json);
        check_same_in_both(full_request(), full_request_json);
        const px::ChatRequest empty{.model = "sonar", .messages = {{.role = "user", .content = "hi"}}};
        check_same_in_both(empty, R"({"model":"sonar","messages":[{"role":"user","content":"hi"}]})");
        check_absent_members_left_out(empty);
    }
}

TEST_SUITE("decode errors") {
    TEST_CASE("a job without id names the field") {
        const px::Error error = decode_error_of(R"({"model":"m","created_at":1,"status":"CREATED"})");
        CHECK(error.json_path == "$.id");
        CHECK(error.message.find("missing") != std::string::npos);
        CHECK_FALSE(error.job_id);
    }

    TEST_CASE("a job without status names the field and keeps the id") {
        const px::Error error = decode_error_of(R"({"id":"job-1","model":"m","created_at":1})");
        CHECK(error.json_path == "$.status");
        CHECK(error.job_id == "job-1");
    }

    TEST_CASE("a null id is as bad as a missing one") {
        const px::Error error =
            decode_error_of(R"({"id":null,"model":"m","created_at":1,"status":"CREATED"})");
        CHECK(error.json_path == "$.id");
        CHECK(error.message.find("null") != std::string::npos);
    }

    TEST_CASE("wrong types name the field and what was found") {
        const px::Error error =
            decode_error_of(R"({"id":"job-1","model":"m","created_at":"yesterday","status":"CREATED"})");
        CHECK(error.json_path == "$.created_at");
        CHECK(error.message.find("expected an integer, found a string") != std::string::npos);
        CHECK(error.job_id == "job-1");

        const px::Error status_type =
            decode_error_of(R"({"id":"job-1","model":"m","created_at":1,"status":3})");
        CHECK(status_type.json_path == "$.status");
    }

    TEST_CASE("problems deep in the completion give the full path") {
        json::value body = json::parse(read_sample("job_completed.json"));
        body.at("response").at("choices").at(0).as_object().erase("message");
        const px::Error missing = decode_error_of(json::serialize(body));
        CHECK(missing.json_path == "$.response.choices[0].message");
        CHECK(missing.job_id == "0b6f3c1e-2a8d-4f1b-9c7e-5d4a3b2c1d0e");

        body = json::parse(read_sample("job_completed.json"));
        body.at("response").at("search_results").at(1).as_object()["url"] = 17;
        CHECK(decode_error_of(json::serialize(body)).json_path == "$.response.search_results[1].url");

        body = json::parse(read_sample("job_completed.json"));
        body.at("response").at("usage").at("cost").as_object()["total_cost"] = "free";
        CHECK(decode_error_of(json::serialize(body)).json_path == "$.response.usage.cost.total_cost");

        body = json::parse(read_sample("job_completed.json"));
        body.at("response").at("choices").at(0).at("message").as_object()["content"] = 12;
        CHECK(decode_error_of(json::serialize(body)).json_path == "$.response.choices[0].message.content");
    }

    TEST_CASE("truncated JSON is a decode error, not a crash") {
        const std::string whole = read_sample("job_completed.json");
        for (std::size_t cut :
             {std::size_t{0}, std::size_t{1}, whole.size() / 3, whole.size() / 2, whole.size() - 2}) {
            CAPTURE(cut);
            const px::Error error = decode_error_of(whole.substr(0, cut));
            CHECK(error.json_path == "$");
            CHECK(error.message.find("not valid JSON") != std::string::npos);
        }
    }

    TEST_CASE("a list where a job was expected") {
        const px::Error error = decode_error_of(read_sample("list_response.json"));
        CHECK(error.json_path == "$.id");
        const px::Error array = decode_error_of("[1, 2, 3]");
        CHECK(array.json_path == "$");
        CHECK(array.message.find("expected an object, found an array") != std::string::npos);
    }

    TEST_CASE("a job where a list was expected") {
        auto page = px::parse_job_page(read_sample("job_created.json"));
        REQUIRE_FALSE(page.has_value());
        CHECK(page.error().json_path == "$.requests");
    }

    TEST_CASE("an unknown status decodes as unknown and keeps its text") {
        auto job = px::parse_job(R"({"id":"j","model":"m","created_at":1,"status":"QUEUED_FOR_REVIEW"})");
        REQUIRE(job.has_value());
        CHECK(job->status == px::JobStatus::unknown);
        CHECK(job->status_text == "QUEUED_FOR_REVIEW");
        CHECK_FALSE(job->is_final());
        CHECK(json::value_from(*job).at("status") == "QUEUED_FOR_REVIEW");
    }

    TEST_CASE("unknown members and nulls for optional members are accepted") {
        auto job = px::parse_job(
            R"({"id":"j","model":"m","created_at":1.767e9,"status":"CREATED","surprise":[1,{"a":null}],)"
            R"("started_at":null,"response":null,"error_message":null})");
        REQUIRE(job.has_value());
        CHECK(job->created_at == 1767000000);
        CHECK_FALSE(job->response);
    }

    TEST_CASE("fractional timestamps are refused") {
        CHECK(decode_error_of(R"({"id":"j","model":"m","created_at":1.5,"status":"CREATED"})").json_path ==
              "$.created_at");
    }

    TEST_CASE("deeply nested JSON is refused without a crash") {
        std::string deep = R"({"id":"j","model":"m","created_at":1,"status":"CREATED","x":)";
        deep += std::string(10000, '[') + std::string(10000, ']') + "}";
        CHECK(decode_error_of(deep).message.find("not valid JSON") != std::string::npos);
    }

    TEST_CASE("error bodies that are not envelopes") {
        px::Error html;
        px::detail::read_error_body("<html><head><title>401 Authorization Required</title></head></html>",
                                    html);
        CHECK(html.body_excerpt == "401 Authorization Required");
        CHECK(html.api_message.empty());

        px::Error text;
        px::detail::read_error_body("upstream\r\nconnect error \x01\xff", text);
        CHECK(text.body_excerpt == "upstream connect error ?");

        px::Error long_body;
        px::detail::read_error_body(std::string(100000, 'x'), long_body);
        CHECK(long_body.body_excerpt.size() <= px::detail::max_server_text + 3);

        px::Error empty;
        px::detail::read_error_body("", empty);
        CHECK(empty.body_excerpt.empty());

        px::Error string_error;
        px::detail::read_error_body(R"({"error":"Too many requests"})", string_error);
        CHECK(string_error.api_message == "Too many requests");

        px::Error string_detail;
        px::detail::read_error_body(R"({"detail":"Not Found"})", string_detail);
        CHECK(string_detail.api_message == "Not Found");
    }
}

TEST_SUITE("messages") {
    TEST_CASE("split_thinking") {
        CHECK(px::split_thinking("plain answer").answer == "plain answer");
        CHECK(px::split_thinking("plain answer").thinking.empty());
        const auto split = px::split_thinking("  <think>step 1\nstep 2</think>\n\n  The answer.");
        CHECK(split.thinking == "step 1\nstep 2");
        CHECK(split.answer == "The answer.");
        const auto open = px::split_thinking("<think>still thinking");
        CHECK(open.thinking == "still thinking");
        CHECK(open.answer.empty());
        CHECK(px::split_thinking("a <think>x</think> b").answer == "a <think>x</think> b");
        CHECK(px::split_thinking("").answer.empty());
    }

    TEST_CASE("message text from every content shape") {
        CHECK(px::Message{.role = "assistant"}.text().empty());
        CHECK(px::Message{.role = "assistant", .content = "hi"}.text() == "hi");
        px::Message parts{.role = "assistant",
                          .content = std::vector<px::ContentPart>{{.type = "text", .text = "a"},
                                                                  {.type = "image_url", .image_url = "u"},
                                                                  {.type = "text", .text = "b"}}};
        CHECK(parts.text() == "ab");
    }

    TEST_CASE("job status names") {
        CHECK(px::job_status_from_string("IN_PROGRESS") == px::JobStatus::in_progress);
        CHECK(px::job_status_from_string("in_progress") == px::JobStatus::unknown);
        CHECK(px::to_string(px::JobStatus::completed) == "COMPLETED");
        CHECK(px::is_final(px::JobStatus::failed));
        CHECK_FALSE(px::is_final(px::JobStatus::unknown));
    }
}

TEST_SUITE("errors") {
    TEST_CASE("an Error prints what happened, what the server said, and the job") {
        const px::Error error{.kind = px::ErrorKind::http_status,
                              .message = "the API refused the API key",
                              .http_status = 401,
                              .api_type = "authentication_error",
                              .api_message = "Invalid API key",
                              .job_id = "job-9"};
        const std::string text = px::to_string(error);
        CHECK(text ==
              "http_status: the API refused the API key (HTTP 401 authentication_error: Invalid API key) "
              "[job job-9]");
    }

    TEST_CASE("decode errors print their path and transport errors their cause") {
        const px::Error decode{.kind = px::ErrorKind::decode, .message = "bad", .json_path = "$.id"};
        CHECK(px::to_string(decode) == "decode: bad at $.id");
        const px::Error transport{.kind = px::ErrorKind::transport,
                                  .message = "connecting failed",
                                  .cause = boost::asio::error::connection_refused};
        CHECK(px::to_string(transport).find("[system:111 Connection refused]") != std::string::npos);
    }

    TEST_CASE("kinds are error codes in their own category") {
        const px::Error error{.kind = px::ErrorKind::timeout};
        CHECK(error.code() == px::ErrorKind::timeout);
        CHECK(error.code() != px::ErrorKind::cancelled);
        CHECK(std::string(error.code().category().name()) == "perplexity");
        CHECK(error.code().message() == "timed out");
        const std::error_code from_enum = px::ErrorKind::rate_limited;
        CHECK(from_enum.message() == "rate limited by the API");
    }

    TEST_CASE("code() is the same type as cause, and converts to std::error_code") {
        const px::Error error{.kind = px::ErrorKind::transport,
                              .cause = boost::asio::error::connection_refused};
        const boost::system::error_code kind = error.code();
        CHECK(kind != error.cause);
        CHECK(error.cause == boost::asio::error::connection_refused);
        const std::error_code standard = error.code();
        CHECK(standard == px::ErrorKind::transport);
        CHECK(standard != px::ErrorKind::timeout);
        CHECK(std::string(standard.category().name()) == "perplexity");
        const boost::system::error_code back = standard;
        CHECK(back == px::ErrorKind::transport);
    }
}

TEST_SUITE("urls") {
    TEST_CASE("https origins") {
        auto origin = px::detail::parse_base_url("https://api.perplexity.ai", false);
        REQUIRE(origin.has_value());
        CHECK(origin->tls);
        CHECK(origin->host == "api.perplexity.ai");
        CHECK(origin->port == "443");
        CHECK(origin->host_header == "api.perplexity.ai");
        CHECK(origin->base_path.empty());
        CHECK_FALSE(origin->host_is_ip_literal);
        CHECK_FALSE(origin->host_is_loopback);

        auto with_path = px::detail::parse_base_url("https://proxy.example:8443/perplexity/", false);
        REQUIRE(with_path.has_value());
        CHECK(with_path->port == "8443");
        CHECK(with_path->host_header == "proxy.example:8443");
        CHECK(with_path->base_path == "/perplexity");

        auto v6 = px::detail::parse_base_url("https://[::1]:9000", false);
        REQUIRE(v6.has_value());
        CHECK(v6->host == "::1");
        CHECK(v6->host_is_ip_literal);
        CHECK(v6->host_is_loopback);
        CHECK(v6->host_header == "[::1]:9000");
    }

    TEST_CASE("plain http only to loopback unless allowed") {
        CHECK(px::detail::parse_base_url("http://127.0.0.1:8080", false).has_value());
        CHECK(px::detail::parse_base_url("http://localhost:8080", false).has_value());
        CHECK(px::detail::parse_base_url("http://[::1]:8080", false).has_value());
        auto refused = px::detail::parse_base_url("http://api.perplexity.ai", false);
        REQUIRE_FALSE(refused.has_value());
        CHECK(refused.error().kind == px::ErrorKind::invalid_argument);
        CHECK(refused.error().message.find("allow_insecure_http") != std::string::npos);
        CHECK_FALSE(px::detail::parse_base_url("http://10.0.0.1", false).has_value());
        CHECK(px::detail::parse_base_url("http://api.perplexity.ai", true).has_value());
    }

    TEST_CASE("malformed base URLs") {
        for (const char* url :
             {"", "api.perplexity.ai", "ftp://x", "https://", "https://:443", "https://h:0",
              "https://h:99999", "https://h:12ab", "https://[::1", "https://h/p?q=1", "https://user:pw@h"}) {
            CAPTURE(url);
            auto origin = px::detail::parse_base_url(url, false);
            REQUIRE_FALSE(origin.has_value());
            CHECK(origin.error().kind == px::ErrorKind::invalid_argument);
        }
    }

    TEST_CASE("percent encoding") {
        CHECK(px::detail::percent_encode("abc-._~XYZ09") == "abc-._~XYZ09");
        CHECK(px::detail::percent_encode("eyJ+/=") == "eyJ%2B%2F%3D");
        CHECK(px::detail::percent_encode("a b/../c?d#e") == "a%20b%2F..%2Fc%3Fd%23e");
        CHECK(px::detail::percent_encode("\xc3\xa9") == "%C3%A9");
    }
}

TEST_SUITE("options") {
    TEST_CASE("options_from_environment reads only what is set") {
        ::setenv("PERPLEXITY_API_KEY", "pplx-from-env", 1);
        ::setenv("PERPLEXITY_BASE_URL", "", 1);
        const px::ClientOptions options = px::options_from_environment();
        CHECK(options.api_key == "pplx-from-env");
        CHECK(options.base_url == "https://api.perplexity.ai");
        ::setenv("PERPLEXITY_BASE_URL", "https://127.0.0.1:1", 1);
        CHECK(px::options_from_environment().base_url == "https://127.0.0.1:1");
        ::unsetenv("PERPLEXITY_API_KEY");
        ::unsetenv("PERPLEXITY_BASE_URL");
        CHECK(px::options_from_environment().api_key.empty());
    }

    TEST_CASE("defaults") {
        const px::ClientOptions options;
        CHECK(options.path_prefix == "/async/chat/completions");
        CHECK(options.user_agent == std::string("perplexity-async/") + px::version_string);
        CHECK_FALSE(options.allow_insecure_http);
    }
}

TEST_SUITE("expected") {
    TEST_CASE("values, errors and the monadic operations") {
        px::expected<int, std::string> good = 4;
        px::expected<int, std::string> bad = px::unexpected(std::string("no"));
        CHECK(good.has_value());
        CHECK(*good == 4);
        CHECK_FALSE(bad);
        CHECK(bad.error() == "no");
        CHECK(bad.value_or(7) == 7);
        CHECK_THROWS_AS((void)bad.value(), px::bad_expected_access<std::string>);
#if !PERPLEXITY_HAS_STD_EXPECTED || __cpp_lib_expected >= 202211L
        // Monadic operations: always in the fallback, in std::expected from P2505 on (GCC 13).
        auto doubled = good.transform([](int v) { return v * 2; });
        CHECK(*doubled == 8);
        auto chained =
            good.and_then([](int v) -> px::expected<std::string, std::string> { return std::to_string(v); });
        CHECK(*chained == "4");
        auto recovered = bad.or_else([](const std::string&) -> px::expected<int, std::string> { return 0; });
        CHECK(*recovered == 0);
        auto renamed = bad.transform_error([](const std::string& e) { return e.size(); });
        CHECK(renamed.error() == 2u);
#endif
        CHECK(good == 4);
        CHECK(bad == px::unexpected(std::string("no")));
        px::expected<std::string, int> in_place(px::unexpect, 5);
        CHECK(in_place.error() == 5);
        in_place = std::string("now a value");
        CHECK(*in_place == "now a value");
    }

    TEST_CASE("which expected is in use") {
        // std::expected exactly when the standard library declares it. libstdc++ 12 declares it in C++23
        // only for compilers with complete C++20 concepts: g++ 12, not clang 16, which keeps the fallback.
#if defined(__cpp_lib_expected)
        CHECK(PERPLEXITY_HAS_STD_EXPECTED == 1);
#else
        CHECK(PERPLEXITY_HAS_STD_EXPECTED == 0);
#endif
#if __cplusplus > 202002L && defined(__GNUC__) && __GNUC__ >= 12 && !defined(__clang__)
        // So the C++23 suite built by g++ is the one that runs on std::expected.
        CHECK(PERPLEXITY_HAS_STD_EXPECTED == 1);
#endif
    }
}
