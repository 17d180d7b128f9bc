# Join the packager's CycloneDX SBOM of an image into Buildroot's own:
#
#   make show-info | utils/generate-cyclonedx > sbom.cdx.json
#   jq -s -f $(BR2_EXTERNAL_HELLOCONTAINER_PATH)/support/join-cyclonedx.jq \
#       sbom.cdx.json $(BINARIES_DIR)/hello.cdx.json > joined.cdx.json
#
# Both name a package by its Buildroot name (bom-ref), so Buildroot's entry is kept and ours
# only adds what Buildroot's document lacks: the image (our document's subject, named by its
# purl and manifest digest) and any library Buildroot does not list (an external toolchain's C
# library). The dependencies of one bom-ref are merged, and the firmware (Buildroot's
# metadata.component) depends on the image, so a walk from the firmware reaches the image's
# digest, and from the image the package that made it.
.[0] as $buildroot
| .[1] as $ours
| $ours.metadata.component as $image
| [$buildroot.components[]["bom-ref"]] as $known
| $buildroot
| .components += [$image]
    + [$ours.components[] | select(.["bom-ref"] as $ref | any($known[]; . == $ref) | not)]
| .dependencies = ([.dependencies[], $ours.dependencies[]]
    | group_by(.ref)
    | map({ref: .[0].ref, dependsOn: ([.[].dependsOn[]?] | unique)}))
| .dependencies |= map(if .ref == $buildroot.metadata.component["bom-ref"]
                       then .dependsOn = (.dependsOn + [$image["bom-ref"]] | unique) else . end)
