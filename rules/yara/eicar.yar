/*
   Detects the EICAR anti-virus test string, a harmless 68-byte text that
   every scanner agrees to flag. Use it to check that payload extraction and
   YARA scanning work end to end: put the string, base64-encoded, in an event
   field declared with --payload-field and expect one hit.

   The EICAR definition asks that a test *file* start with the string; a
   payload here is often a larger body (a mail attachment, a script block),
   so the rule looks for the string anywhere in the payload.
*/

rule EICAR_Test_String : test
{
    meta:
        author = "Threat Foundry"
        description = "EICAR anti-virus test string (harmless, used to test the detection pipeline)"
        reference = "https://www.eicar.org/download-anti-malware-testfile/"
        tlp = "TLP:CLEAR"
        confidence = 100
        sha256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"

    strings:
        // The backslash is escaped for YARA; the string itself is 68 bytes.
        $eicar = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

    condition:
        $eicar
}
