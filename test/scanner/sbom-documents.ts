/** SBOM documents in the formats builders write, for the builder-SBOM tests. */

/** An SPDX 2.3 tag-value document as syft writes one (`syft -o spdx-tag-value`), cut to a few packages. */
export const SPDX_TAG_VALUE = `SPDXVersion: SPDX-2.3
DataLicense: CC0-1.0
SPDXID: SPDXRef-DOCUMENT
DocumentName: registry.example/team/app
DocumentNamespace: https://anchore.com/syft/image/team-app-5b0f
LicenseListVersion: 3.23
Creator: Organization: Anchore, Inc
Creator: Tool: syft-1.4.1
Created: 2024-05-01T00:00:00Z

##### Unpackaged files

FileName: ./etc/os-release
SPDXID: SPDXRef-File-etc-os-release
FileChecksum: SHA1: 0000000000000000000000000000000000000000
LicenseConcluded: NOASSERTION
FileCopyrightText: NOASSERTION

##### Package: team/app

PackageName: team/app
SPDXID: SPDXRef-DocumentRoot-Image-team-app
PackageVersion: sha256:5b0f
PackageSupplier: NOASSERTION
PackageDownloadLocation: NOASSERTION
PrimaryPackagePurpose: CONTAINER
FilesAnalyzed: false
ExternalRef: PACKAGE-MANAGER purl pkg:oci/app@sha256%3A5b0f?repository_url=registry.example%2Fteam%2Fapp

##### Package: body-parser

PackageName: body-parser
SPDXID: SPDXRef-Package-npm-body-parser-1
PackageVersion: 1.20.2
PackageSupplier: NOASSERTION
PackageDownloadLocation: https://registry.npmjs.org/body-parser/-/body-parser-1.20.2.tgz
FilesAnalyzed: false
PackageLicenseDeclared: MIT
PackageComment: <text>installed by
the application's package-lock.json</text>

##### Package: zlib1g

PackageName: zlib1g
SPDXID: SPDXRef-Package-deb-zlib1g-2
PackageVersion: 1:1.2.11.dfsg-0ubuntu2
PackageDownloadLocation: NOASSERTION
FilesAnalyzed: false
ExternalRef: SECURITY cpe23Type cpe:2.3:a:zlib1g:zlib1g:1\\:1.2.11.dfsg-0ubuntu2:*:*:*:*:*:*:*
ExternalRef: PACKAGE-MANAGER purl pkg:deb/ubuntu/zlib1g@1%3A1.2.11.dfsg-0ubuntu2?arch=amd64&upstream=zlib&distro=ubuntu-18.04

##### Relationships

Relationship: SPDXRef-DOCUMENT DESCRIBES SPDXRef-DocumentRoot-Image-team-app
`;
