/*
 * The virtio-mmio device xvgpu serves in the tier's HVM guest (docs/deploy-xen.md, section 3):
 * Linux's virtio_mmio driver matches LNRO0005. Window 0xFE000000 (unused by hvmloader), 0x200 bytes,
 * ISA IRQ 7 level active-high (free: hvmloader's PCI link IRQs are 5, 10, 11). xl passes it with
 * acpi_firmware=; iasl (acpica-tools) compiles it at harness time.
 */
DefinitionBlock ("xvgpu-ssdt.aml", "SSDT", 2, "XVGPU", "VIRTMMIO", 0x00000001)
{ Scope (\_SB) { Device (VIO0) {
    Name (_HID, "LNRO0005")
    Name (_UID, 0)
    Name (_CRS, ResourceTemplate () {
        Memory32Fixed (ReadWrite, 0xFE000000, 0x00000200)
        Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { 7 } }) } } }
