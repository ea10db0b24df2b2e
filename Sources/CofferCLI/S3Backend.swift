import Coffer
import Foundation

/// Builds the S3 storage for an `s3:` repository URL from `-o s3.*` options and the AWS
/// environment (AWS_ACCESS_KEY_ID…, AWS_PROFILE, ~/.aws/credentials).
enum S3Backend {
    static func storage(url: String, settings: [(name: String, value: String)]) throws -> S3Storage {
        let options = try S3Options(settings: settings)
        let location = try S3Location(parsing: url, addressing: options.addressing)
        let configuration = try S3Configuration.resolve(environment: ProcessInfo.processInfo.environment)
        // An AWS host name that names a region is where the bucket is; the environment's region
        // is a default for endpoints that do not say.
        let region = options.region ?? location.hostRegion ?? configuration.configuredRegion ?? S3Configuration.defaultRegion
        return S3Storage(location: location, credentials: configuration.credentials, region: region, options: options)
    }
}
