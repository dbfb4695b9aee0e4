/*
 * http_transport.cpp — delivering a batch as an HTTP POST with libcurl.
 *
 * The body is the batch's json lines (application/x-ndjson), one change per
 * line, begin and commit lines framing each transaction.  Headers: the
 * Idempotency-Key of the batch (a retry of an unacknowledged batch carries the
 * same key), Authorization: Bearer <token> when the target has one, and the
 * target's extra headers.  TLS peer and host verification stay on; ca_file
 * replaces the system's CA bundle.  Redirects are not followed: a 3xx is a
 * failure, so a batch cannot be acknowledged by some other server.
 *
 * A body with spilled pieces is read back from the spill file while it is
 * sent (CURLOPT_READFUNCTION).  The transfer runs on curl's multi interface, waiting at most 100 ms
 * at a time so that interrupts (query cancel, SIGTERM) are seen promptly; the connection is kept
 * for the next batch.
 */
#include "core/guard.hpp"
#include "ship/activity.hpp"
#include "ship/transport.hpp"
#include "ship/url.hpp"

#include <cstring>
#include <curl/curl.h>
#include <exception>

extern "C" {
#include "storage/ipc.h"
#include "storage/pmsignal.h"
}

namespace edgesync::ship {

namespace {

class CurlGlobal {
  public:
	CurlGlobal() { ok_ = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK; }
	bool ok() const { return ok_; }

  private:
	bool ok_;
};

bool
curl_ready()
{
	static CurlGlobal global; /* once per process, never cleaned up */
	return global.ok();
}

size_t
collect_response(char *data, size_t size, size_t nmemb, void *userdata)
{
	std::string *response = static_cast<std::string *>(userdata);
	size_t n = size * nmemb;
	if (response->size() < 512)
		response->append(data, std::min(n, 512 - response->size()));
	return n;
}

/*
 * Feeds libcurl a body with spilled pieces, reading the spill file as the
 * request goes out.  An error reading it is kept and rethrown after the
 * transfer: no exception may unwind through libcurl.
 */
struct BodyReader {
	const Body &body;
	size_t piece = 0;
	uint64_t offset = 0; /* within the piece */
	std::exception_ptr failure;
};

size_t
read_body(char *buffer, size_t size, size_t nitems, void *userdata)
{
	BodyReader *r = static_cast<BodyReader *>(userdata);
	size_t room = size * nitems;
	size_t n = 0;
	try {
		while (n < room && r->piece < r->body.pieces.size()) {
			const BodyPiece &p = r->body.pieces[r->piece];
			uint64_t length = p.spill_bytes != 0 ? p.spill_bytes : p.text.size();
			size_t chunk = static_cast<size_t>(std::min<uint64_t>(room - n, length - r->offset));
			if (p.spill_bytes != 0)
				r->body.spill->read(p.spill_offset + r->offset, buffer + n, chunk);
			else
				memcpy(buffer + n, p.text.data() + r->offset, chunk);
			n += chunk;
			r->offset += chunk;
			if (r->offset == length) {
				r->piece++;
				r->offset = 0;
			}
		}
	} catch (...) {
		r->failure = std::current_exception();
		return CURL_READFUNC_ABORT;
	}
	return n;
}

class HttpTransport : public Transport {
  public:
	explicit HttpTransport(const TargetConfig &config) : config_(config)
	{
		if (!curl_ready())
			throw Error("XX000", "could not initialize libcurl");
		TargetUrl url = parse_target_url(config.url);
		url_ = url.without_userinfo;
		user_ = url.user;
		multi_ = curl_multi_init();
		easy_ = curl_easy_init();
		if (multi_ == nullptr || easy_ == nullptr)
			throw std::bad_alloc();
	}

	~HttpTransport() override
	{
		if (easy_ != nullptr)
			curl_easy_cleanup(easy_);
		if (multi_ != nullptr)
			curl_multi_cleanup(multi_);
	}

	/* The whole exchange: HTTP has nothing to do while waiting for the next batch. */
	bool finish(std::string &) override { return true; }

	bool start(const Body &body, const std::string &key, std::string &error) override
	{
		report_activity(Activity::kSending);
		detail_.clear();
		std::string response;
		char curl_error[CURL_ERROR_SIZE] = "";
		struct curl_slist *headers = nullptr;
		std::vector<std::string> lines = {"Content-Type: application/x-ndjson",
										  "Idempotency-Key: " + key,
										  "Expect:", "X-Edgesync-Target: " + config_.name};
		if (!config_.bearer_token.empty())
			lines.push_back("Authorization: Bearer " + config_.bearer_token);
		for (const std::string &h : config_.headers)
			lines.push_back(h);
		for (const std::string &line : lines) {
			struct curl_slist *next = curl_slist_append(headers, line.c_str());
			if (next == nullptr) {
				curl_slist_free_all(headers);
				throw std::bad_alloc();
			}
			headers = next;
		}
		struct HeaderList {
			curl_slist *list;
			~HeaderList() { curl_slist_free_all(list); }
		} header_guard{headers};

		CURL *e = easy_;
		curl_easy_reset(e);
		curl_easy_setopt(e, CURLOPT_URL, url_.c_str());
		curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		BodyReader reader{body};
		if (const std::string *text = body.in_memory())
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, text->data());
		else {
			curl_easy_setopt(e, CURLOPT_READFUNCTION, read_body);
			curl_easy_setopt(e, CURLOPT_READDATA, &reader);
		}
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(config_.timeout_ms));
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
						 static_cast<long>(std::min(config_.timeout_ms, 10000)));
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(e, CURLOPT_ERRORBUFFER, curl_error);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect_response);
		curl_easy_setopt(e, CURLOPT_WRITEDATA, &response);
		curl_easy_setopt(e, CURLOPT_USERAGENT, "edgesync/" EDGESYNC_VERSION);
		if (!config_.ca_file.empty())
			curl_easy_setopt(e, CURLOPT_CAINFO, config_.ca_file.c_str());
		if (!user_.empty()) {
			curl_easy_setopt(e, CURLOPT_USERNAME, user_.c_str());
			curl_easy_setopt(e, CURLOPT_PASSWORD, config_.password.c_str());
		}

		curl_multi_add_handle(multi_, e);
		struct Attached {
			CURLM *multi;
			CURL *easy;
			~Attached() { curl_multi_remove_handle(multi, easy); }
		} attached{multi_, e};

		CURLcode result = CURLE_OK;
		for (;;) {
			int running = 0;
			CURLMcode mc = curl_multi_perform(multi_, &running);
			if (mc != CURLM_OK) {
				error = format("libcurl: %s", curl_multi_strerror(mc));
				return false;
			}
			if (running == 0)
				break;
			/* The whole body is out: what is left is the receiver's answer. */
			curl_off_t uploaded = 0;
			if (curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK &&
				static_cast<uint64_t>(uploaded) >= body.size())
				report_activity(Activity::kWaiting);
			int numfds = 0;
			curl_multi_wait(multi_, nullptr, 0, 100, &numfds);
			check_for_interrupts();
		}
		int queued = 0;
		while (CURLMsg *msg = curl_multi_info_read(multi_, &queued))
			if (msg->msg == CURLMSG_DONE && msg->easy_handle == e)
				result = msg->data.result;
		if (reader.failure)
			std::rethrow_exception(reader.failure);

		if (result != CURLE_OK) {
			error = format("HTTP request failed: %s",
						   curl_error[0] != '\0' ? curl_error : curl_easy_strerror(result));
			return false;
		}
		long status = 0;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299) {
			/*
			 * The receiver's answer may quote what it was sent: for
			 * edgesync_admin only, as ASCII (it may be in any encoding).
			 */
			error = format("HTTP status %ld from receiver", status);
			if (!response.empty()) {
				detail_ = error + ": ";
				for (unsigned char c : response)
					if (c < 0x20 || c >= 0x7f)
						detail_ += format("\\x%02x", c);
					else
						detail_.push_back(static_cast<char>(c));
			}
			return false;
		}
		return true;
	}

  private:
	const TargetConfig config_; /* a copy: the worker keeps a transport across rounds */
	std::string url_;
	std::string user_;
	CURLM *multi_ = nullptr;
	CURL *easy_ = nullptr;
};

} // namespace

std::unique_ptr<Transport>
make_http_transport(const TargetConfig &config)
{
	return std::make_unique<HttpTransport>(config);
}

void
check_for_interrupts()
{
	pg_call([] {
		if (!PostmasterIsAlive())
			proc_exit(1);
		CHECK_FOR_INTERRUPTS();
	});
}

} // namespace edgesync::ship
