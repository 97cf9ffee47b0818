// The request → response logic of the simulated API, free of any I/O so it stays easy to reason about.
#pragma once

#include <perplexity_sim/agent_request.hpp>
#include <perplexity_sim/create_bucket.hpp>
#include <perplexity_sim/job_store.hpp>
#include <perplexity_sim/options.hpp>
#include <perplexity_sim/response_store.hpp>
#include <perplexity_sim/text.hpp>

#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace perplexity_sim::detail {

namespace http = boost::beast::http;

using Request = http::request<http::string_body>;
using Response = http::response<http::string_body>;

// One entry of a FastAPI validation answer.
struct FieldError {
    boost::json::array loc;
    std::string msg;
    std::string type;
};

inline Response json_response(http::status status, const boost::json::value& body) {
    Response res{status, 11};
    res.set(http::field::server, "perplexity-sim");
    res.set(http::field::content_type, "application/json");
    res.body() = boost::json::serialize(body);
    return res;
}

// The envelope the real API uses for 400, 401, 404 and 429; the Agent API adds the field a 400 is about
// as `param`.
inline Response error_response(http::status status, std::string_view message, std::string_view type,
                               std::string_view param = {}) {
    boost::json::object error{{"message", message},
                              {"type", type},
                              {"code", static_cast<std::int64_t>(static_cast<unsigned>(status))}};
    if (!param.empty()) {
        error["param"] = param;
    }
    return json_response(status, boost::json::object{{"error", std::move(error)}});
}

inline Response validation_response(const std::vector<FieldError>& errors) {
    boost::json::array detail;
    for (const auto& error : errors) {
        detail.push_back(boost::json::object{{"loc", error.loc}, {"msg", error.msg}, {"type", error.type}});
    }
    return json_response(http::status::unprocessable_entity,
                         boost::json::object{{"detail", std::move(detail)}});
}

class Api {
  public:
    using Clock = std::chrono::steady_clock;

    // Throws std::invalid_argument when a create rate limit is set with a burst out of 1..1000000.
    explicit Api(const SimulatorOptions& options) : options_(options), store_(options), responses_(options) {
        if (options_.creates_per_minute != 0) {
            CreateBucket::check(options_.creates_per_minute, options_.create_burst);
        }
    }

    // Builds the complete answer, headers and keep-alive included; only the transport decides to drop.
    // `now` is when the request arrived, for the create rate limit.
    Response handle(const Request& req, Clock::time_point now = Clock::now()) {
        ++requests_;
        Response res = dispatch(req, now);
        res.version(req.version() == 10 ? 10 : 11);
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        return res;
    }

    // For answers the transport produces itself (unreadable or oversized requests); they always end the
    // connection because the rest of the byte stream cannot be trusted.
    Response reject(http::status status, std::string_view message, std::string_view type) {
        ++requests_;
        Response res = error_response(status, message, type);
        res.keep_alive(false);
        res.prepare_payload();
        return res;
    }

    std::size_t requests() const { return requests_; }
    std::size_t jobs_created() const { return store_.jobs_created(); }
    std::size_t responses_created() const { return responses_.responses_created(); }
    std::size_t responses_cancelled() const { return responses_.responses_cancelled(); }

    // The create rate limit's counters (SimulatorStats has their meaning).
    std::size_t creates_rate_limited() const { return creates_rate_limited_; }
    std::size_t admitted_creates() const { return admitted_creates_; }
    const std::optional<Clock::time_point>& first_admitted_create() const { return first_admitted_create_; }
    const std::optional<Clock::time_point>& last_admitted_create() const { return last_admitted_create_; }

  private:
    enum class Family { none, collection, item };

    Response dispatch(const Request& req, Clock::time_point now) {
        const auto token = bearer_token(req);
        if (!token || *token != options_.api_key) {
            return error_response(http::status::unauthorized, "Invalid API key", "authentication_error");
        }
        const std::string_view target = req.target();
        const auto question_mark = target.find('?');
        const std::string_view raw_path = target.substr(0, question_mark);
        const std::string_view raw_query =
            question_mark == std::string_view::npos ? std::string_view{} : target.substr(question_mark + 1);

        std::vector<std::string> segments;
        if (!split_path(raw_path, segments)) {
            return error_response(http::status::bad_request, "Malformed percent-encoding in path",
                                  "bad_request");
        }
        if (auto answer = agent_route(req, segments, *token, now)) {
            return std::move(*answer);
        }
        const Family family = match(segments);
        if (family == Family::none) {
            return error_response(http::status::not_found, "Not Found", "not_found");
        }
        auto query = parse_query(raw_query);
        if (!query) {
            return error_response(http::status::bad_request, "Malformed percent-encoding in query string",
                                  "bad_request");
        }
        if (family == Family::collection) {
            if (req.method() == http::verb::post) {
                if (auto refused = refuse_create(*token, now)) {
                    return std::move(*refused);
                }
                return create(req.body());
            }
            if (req.method() == http::verb::get) {
                return list(*query);
            }
            return method_not_allowed("GET, POST");
        }
        if (req.method() == http::verb::get) {
            return get(segments.back());
        }
        return method_not_allowed("GET");
    }

    // The API key of `Authorization: Bearer KEY`; nothing without one.
    static std::optional<std::string_view> bearer_token(const Request& req) {
        const auto it = req.find(http::field::authorization);
        if (it == req.end()) {
            return std::nullopt;
        }
        std::string_view value = it->value();
        constexpr std::string_view scheme = "bearer";
        if (value.size() <= scheme.size() || !iequals_ascii(value.substr(0, scheme.size()), scheme) ||
            value[scheme.size()] != ' ') {
            return std::nullopt;
        }
        value.remove_prefix(scheme.size());
        while (!value.empty() && value.front() == ' ') {
            value.remove_prefix(1);
        }
        return value;
    }

    // The create rate limit, before the create is even read: the 429 when the key's bucket is full,
    // otherwise nothing, and the create is counted as admitted.
    std::optional<Response> refuse_create(std::string_view token, Clock::time_point now) {
        if (options_.creates_per_minute != 0) {
            auto bucket = buckets_.find(token);
            if (bucket == buckets_.end()) {
                bucket = buckets_
                             .emplace(std::string(token),
                                      CreateBucket(options_.creates_per_minute, options_.create_burst))
                             .first;
            }
            if (const auto wait = bucket->second.admit(now)) {
                ++creates_rate_limited_;
                return rate_limited(*wait);
            }
        }
        ++admitted_creates_;
        if (!first_admitted_create_) {
            first_admitted_create_ = now;
        }
        last_admitted_create_ = now;
        return std::nullopt;
    }

    // The API's 429 envelope, with both hints rounded up so that a client that waits exactly as long is
    // admitted: `retry-after-ms` until one create fits, `retry-after` the same in whole seconds.
    Response rate_limited(Clock::duration wait) const {
        const auto milliseconds = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
        const auto seconds = std::max<std::int64_t>(1, (milliseconds + 999) / 1000);
        Response res = error_response(
            http::status::too_many_requests,
            "Rate limit exceeded: this API key may make " + std::to_string(options_.creates_per_minute) +
                " create requests per minute; retry in " + std::to_string(milliseconds) + " ms",
            "rate_limit_exceeded");
        res.set(http::field::retry_after, std::to_string(seconds));
        res.set("retry-after-ms", std::to_string(milliseconds));
        return res;
    }

    // Splits before decoding, so an encoded '/' stays inside its segment (an id may contain one).
    static bool split_path(std::string_view path, std::vector<std::string>& segments) {
        if (path.empty() || path.front() != '/') {
            return true;  // no segments: not a route
        }
        path.remove_prefix(1);
        for (;;) {
            const auto slash = path.find('/');
            auto decoded = percent_decode(path.substr(0, slash), false);
            if (!decoded) {
                return false;
            }
            segments.push_back(std::move(*decoded));
            if (slash == std::string_view::npos) {
                return true;
            }
            path.remove_prefix(slash + 1);
        }
    }

    // Both path families (the SDK's and the docs') reach the same store.
    static Family match(const std::vector<std::string>& segments) {
        static const std::array<std::array<std::string_view, 3>, 2> prefixes{{
            {"async", "chat", "completions"},
            {"v1", "async", "sonar"},
        }};
        if (segments.size() != 3 && segments.size() != 4) {
            return Family::none;
        }
        for (const auto& prefix : prefixes) {
            if (segments[0] == prefix[0] && segments[1] == prefix[1] && segments[2] == prefix[2]) {
                if (segments.size() == 3) {
                    return Family::collection;
                }
                return segments[3].empty() ? Family::none : Family::item;
            }
        }
        return Family::none;
    }

    // The Agent API: POST /v1/responses (also /v1/agent), GET /v1/responses/{id} and
    // POST /v1/responses/{id}/cancel. Nothing for any other path.
    std::optional<Response> agent_route(const Request& req, const std::vector<std::string>& segments,
                                        std::string_view token, Clock::time_point now) {
        if (segments.size() < 2 || segments[0] != "v1") {
            return std::nullopt;
        }
        if (segments.size() == 2 && (segments[1] == "responses" || segments[1] == "agent")) {
            if (req.method() != http::verb::post) {
                return method_not_allowed("POST");
            }
            if (auto refused = refuse_create(token, now)) {
                return std::move(*refused);
            }
            return create_response(req.body());
        }
        if (segments[1] != "responses" || segments.size() > 4 || segments[2].empty()) {
            return std::nullopt;
        }
        if (segments.size() == 3) {
            if (req.method() != http::verb::get) {
                return method_not_allowed("GET");
            }
            return retrieve_response(segments[2]);
        }
        if (segments[3] != "cancel") {
            return std::nullopt;
        }
        if (req.method() != http::verb::post) {
            return method_not_allowed("POST");
        }
        return cancel_response(segments[2]);
    }

    Response create_response(const std::string& body) {
        auto parsed = AgentRequestParser::parse(body);
        if (const auto* problem = std::get_if<RequestProblem>(&parsed)) {
            return error_response(http::status::bad_request, problem->message, "invalid_request",
                                  problem->param);
        }
        StoredResponse& response = responses_.create(std::move(std::get<AgentRequest>(parsed)));
        return json_response(http::status::ok, ResponseStore::to_json(response));
    }

    static Response response_not_found(const std::string& id) {
        return error_response(http::status::not_found, "response " + id + " not found", "not_found");
    }

    Response retrieve_response(const std::string& id) {
        StoredResponse* response = responses_.find(id);
        if (response == nullptr) {
            return response_not_found(id);
        }
        responses_.observe(*response);
        return json_response(http::status::ok, ResponseStore::to_json(*response));
    }

    Response cancel_response(const std::string& id) {
        StoredResponse* response = responses_.find(id);
        if (response == nullptr) {
            return response_not_found(id);
        }
        if (responses_.cancel(*response) == ResponseStore::CancelResult::already_final) {
            return error_response(http::status::bad_request,
                                  "response " + id + " is already " + ResponseStore::status_name(*response) +
                                      " and cannot be cancelled",
                                  "invalid_request");
        }
        return json_response(http::status::ok,
                             boost::json::object{{"response_id", id}, {"status", "cancelling"}});
    }

    static Response method_not_allowed(std::string_view allow) {
        Response res =
            error_response(http::status::method_not_allowed, "Method Not Allowed", "method_not_allowed");
        res.set(http::field::allow, allow);
        return res;
    }

    Response get(const std::string& id) {
        Job* job = store_.find(id);
        if (job == nullptr) {
            return error_response(http::status::not_found, "Async request " + id + " not found", "not_found");
        }
        store_.observe(*job);
        return json_response(http::status::ok, JobStore::to_json(*job));
    }

    Response list(const QueryParams& query) {
        std::size_t limit = options_.default_page_size;
        if (const std::string* text = find_param(query, "limit")) {
            const auto parsed = parse_integer(*text);
            if (!parsed) {
                return validation_response(
                    {{{"query", "limit"},
                      "Input should be a valid integer, unable to parse string as an integer",
                      "int_parsing"}});
            }
            if (*parsed < 1) {
                return validation_response({{{"query", "limit"},
                                             "Input should be greater than or equal to 1",
                                             "greater_than_equal"}});
            }
            if (static_cast<std::uint64_t>(*parsed) > options_.max_page_size) {
                return validation_response(
                    {{{"query", "limit"},
                      "Input should be less than or equal to " + std::to_string(options_.max_page_size),
                      "less_than_equal"}});
            }
            limit = static_cast<std::size_t>(*parsed);
        }
        std::size_t offset = 0;
        if (const std::string* token = find_param(query, "next_token")) {
            const auto decoded = decode_token(*token);
            if (!decoded) {
                return error_response(http::status::bad_request, "Invalid next_token", "bad_request");
            }
            offset = *decoded;
        }
        boost::json::array items;
        const std::size_t total = store_.size();
        std::size_t index = offset;
        for (; index < total && items.size() < limit; ++index) {
            items.push_back(JobStore::summary_json(store_.newest(index)));
        }
        boost::json::object body{{"requests", std::move(items)}};
        body["next_token"] =
            index < total ? boost::json::value(encode_token(index)) : boost::json::value(nullptr);
        return json_response(http::status::ok, body);
    }

    static std::optional<std::int64_t> parse_integer(std::string_view text) {
        // Pydantic tolerates surrounding whitespace and a sign; nothing else.
        while (!text.empty() && text.front() == ' ') {
            text.remove_prefix(1);
        }
        while (!text.empty() && text.back() == ' ') {
            text.remove_suffix(1);
        }
        bool negative = false;
        if (!text.empty() && (text.front() == '+' || text.front() == '-')) {
            negative = text.front() == '-';
            text.remove_prefix(1);
        }
        if (text.empty() || text.size() > 18) {
            return std::nullopt;
        }
        std::int64_t value = 0;
        for (char c : text) {
            if (c < '0' || c > '9') {
                return std::nullopt;
            }
            value = value * 10 + (c - '0');
        }
        return negative ? -value : value;
    }

    // The token is opaque to clients. Its payload is padded so that the base64 text always contains '+',
    // '/' and '=': a client that forgets to URL-encode it sends a token that no longer decodes.
    static std::string encode_token(std::size_t offset) {
        std::string payload = "{\"offset\":" + std::to_string(offset) + ",\"pad\":\"";
        // A byte at a position of 2 mod 3 supplies the last sextet of its group: '>' encodes as '+', '?' as
        // '/'.
        for (const char wanted : {'>', '?'}) {
            while (payload.size() % 3 != 2) {
                payload.push_back('.');
            }
            payload.push_back(wanted);
        }
        // The closing `"}` leaves a length of 2 mod 3, so the text also ends in '='.
        payload += "\"}";
        return base64_encode(payload);
    }

    static std::optional<std::size_t> decode_token(const std::string& token) {
        const auto payload = base64_decode(token);
        if (!payload) {
            return std::nullopt;
        }
        boost::system::error_code ec;
        const boost::json::value value = boost::json::parse(*payload, ec);
        if (ec || !value.is_object()) {
            return std::nullopt;
        }
        const auto* offset = value.as_object().if_contains("offset");
        if (offset == nullptr) {
            return std::nullopt;
        }
        if (offset->is_int64() && offset->as_int64() >= 0) {
            return static_cast<std::size_t>(offset->as_int64());
        }
        if (offset->is_uint64()) {
            return static_cast<std::size_t>(offset->as_uint64());
        }
        return std::nullopt;
    }

    // Mirrors FastAPI/Pydantic: first every structural problem as one 422, then the service's own checks
    // as a 400 whose message is a JSON-ish list of strings.
    Response create(const std::string& body) {
        if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
            return validation_response({{{"body"}, "Field required", "missing"}});
        }
        boost::system::error_code ec;
        const boost::json::value document = boost::json::parse(body, ec);
        if (ec) {
            return validation_response({{{"body", 0}, "JSON decode error", "json_invalid"}});
        }
        std::vector<FieldError> errors;
        constexpr std::string_view not_an_object =
            "Input should be a valid dictionary or object to extract fields from";
        if (!document.is_object()) {
            return validation_response({{{"body"}, std::string(not_an_object), "model_attributes_type"}});
        }
        const auto& root = document.as_object();

        std::optional<std::string> idempotency_key;
        if (const auto* key = root.if_contains("idempotency_key"); key != nullptr && !key->is_null()) {
            if (!key->is_string()) {
                errors.push_back(
                    {{"body", "idempotency_key"}, "Input should be a valid string", "string_type"});
            } else if (!key->as_string().empty()) {
                idempotency_key = std::string(key->as_string());
            }
        }

        const auto* request_value = root.if_contains("request");
        if (request_value == nullptr) {
            errors.push_back({{"body", "request"}, "Field required", "missing"});
            return validation_response(errors);
        }
        if (!request_value->is_object()) {
            errors.push_back({{"body", "request"}, std::string(not_an_object), "model_attributes_type"});
            return validation_response(errors);
        }
        const auto& request = request_value->as_object();

        std::string model;
        if (const auto* value = request.if_contains("model"); value == nullptr) {
            errors.push_back({{"body", "request", "model"}, "Field required", "missing"});
        } else if (!value->is_string()) {
            errors.push_back({{"body", "request", "model"}, "Input should be a valid string", "string_type"});
        } else {
            model = std::string(value->as_string());
        }

        JobInput input;
        std::size_t message_count = 0;
        if (const auto* value = request.if_contains("messages"); value == nullptr) {
            errors.push_back({{"body", "request", "messages"}, "Field required", "missing"});
        } else if (!value->is_array()) {
            errors.push_back({{"body", "request", "messages"}, "Input should be a valid list", "list_type"});
        } else {
            message_count = value->as_array().size();
            check_messages(value->as_array(), input, errors);
        }

        std::optional<std::int64_t> max_tokens;
        if (const auto* value = request.if_contains("max_tokens"); value != nullptr && !value->is_null()) {
            if (value->is_int64()) {
                max_tokens = value->as_int64();
            } else if (value->is_uint64()) {
                max_tokens = std::numeric_limits<std::int64_t>::max();
            } else if (value->is_double() && std::floor(value->as_double()) == value->as_double() &&
                       std::abs(value->as_double()) < 1e15) {
                max_tokens = static_cast<std::int64_t>(value->as_double());
            } else {
                errors.push_back(
                    {{"body", "request", "max_tokens"}, "Input should be a valid integer", "int_type"});
            }
        }
        if (!errors.empty()) {
            return validation_response(errors);
        }

        boost::json::array problems;
        if (message_count == 0) {
            problems.push_back(
                "At body -> messages: List should have at least 1 item after validation, not 0");
        }
        if (max_tokens && *max_tokens <= 0) {
            problems.push_back("At body -> max_tokens: Input should be greater than 0");
        }
        if (!problems.empty()) {
            return error_response(http::status::bad_request, boost::json::serialize(problems), "bad_request");
        }

        input.model = std::move(model);
        auto result = store_.create(std::move(input), idempotency_key);
        return json_response(http::status::ok, JobStore::to_json(*result.job));
    }

    static void check_messages(const boost::json::array& messages, JobInput& input,
                               std::vector<FieldError>& errors) {
        static constexpr std::array<std::string_view, 4> roles{"system", "user", "assistant", "tool"};
        for (std::size_t i = 0; i < messages.size(); ++i) {
            const auto at = [&](std::string_view field) {
                boost::json::array loc{"body", "request", "messages", static_cast<std::int64_t>(i)};
                if (!field.empty()) {
                    loc.push_back(boost::json::string(field));
                }
                return loc;
            };
            if (!messages[i].is_object()) {
                errors.push_back({at({}),
                                  "Input should be a valid dictionary or object to extract fields from",
                                  "model_attributes_type"});
                continue;
            }
            const auto& message = messages[i].as_object();
            std::string_view role;
            if (const auto* value = message.if_contains("role"); value == nullptr) {
                errors.push_back({at("role"), "Field required", "missing"});
            } else if (!value->is_string()) {
                errors.push_back({at("role"), "Input should be a valid string", "string_type"});
            } else {
                role = value->as_string();
                bool known = false;
                for (auto r : roles) {
                    known = known || r == role;
                }
                if (!known) {
                    errors.push_back(
                        {at("role"), "Input should be 'system', 'user', 'assistant' or 'tool'", "enum"});
                }
            }
            std::string text;
            if (const auto* value = message.if_contains("content"); value == nullptr) {
                errors.push_back({at("content"), "Field required", "missing"});
            } else if (value->is_string()) {
                text = std::string(value->as_string());
            } else if (value->is_array()) {
                text = text_of_parts(value->as_array());
            } else if (!value->is_null()) {
                errors.push_back({at("content"), "Input should be a valid string", "string_type"});
            }
            input.prompt_chars += text.size();
            if (role == "user") {
                input.force_failure = text.find("[[fail]]") != std::string::npos;
                input.question = std::move(text);
            }
        }
    }

    // Multi-part content: the text parts joined, which is what the answer can meaningfully echo.
    static std::string text_of_parts(const boost::json::array& parts) {
        std::string text;
        for (const auto& part : parts) {
            if (const auto* object = part.if_object()) {
                if (const auto* value = object->if_contains("text"); value != nullptr && value->is_string()) {
                    if (!text.empty()) {
                        text.push_back(' ');
                    }
                    text.append(value->as_string().data(), value->as_string().size());
                }
            }
        }
        return text;
    }

    // Hashes a string_view as its std::string, so a bucket is found by the request's token without a copy.
    struct TokenHash {
        using is_transparent = void;
        std::size_t operator()(std::string_view token) const { return std::hash<std::string_view>{}(token); }
    };

    SimulatorOptions options_;
    JobStore store_;
    ResponseStore responses_;
    std::size_t requests_ = 0;
    // One create bucket per API key. The simulator accepts a single key today; keyed anyway, as the API is.
    std::unordered_map<std::string, CreateBucket, TokenHash, std::equal_to<>> buckets_;
    std::size_t creates_rate_limited_ = 0;
    std::size_t admitted_creates_ = 0;
    std::optional<Clock::time_point> first_admitted_create_;
    std::optional<Clock::time_point> last_admitted_create_;
};

}  // namespace perplexity_sim::detail
